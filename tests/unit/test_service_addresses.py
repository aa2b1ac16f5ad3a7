"""Service addresses a cluster reports are untrusted: only plain host names become links."""

import pytest

from platforms.service_addresses import RefusedAddress, check_host, check_links, is_service_url, shown
from platforms.services.types import ServiceLinkInfo

HOSTILE = [
    ("evil.example.com/path", "plain host name"),
    ('evil.example.com/"><script>alert(1)</script>', "plain host name"),
    ("https://evil.example.com", "plain host name"),
    ("user@evil.example.com", "plain host name"),
    ("evil.example.com:8443", "plain host name"),
    ("192.168.1.10", "IP address"),
    ("[::1]", "plain host name"),
    ("évil.example.com", "plain host name"),
    ("xn--vil-9la.example.com ", "plain host name"),
    ("a" * 300, "longer than 253"),
    ("-bad.example.com", "plain host name"),
    ("bad..example.com", "plain host name"),
    ("evil.example.com.", "plain host name"),
    ("evil.example.com\n", "plain host name"),
    ("", "not a host name"),
    (["a.example.org"], "not a host name"),
]


@pytest.mark.parametrize(("value", "reason"), HOSTILE)
def test_anything_but_a_plain_host_name_is_refused(value, reason):
    with pytest.raises(RefusedAddress, match=reason):
        check_host(value)


@pytest.mark.parametrize("value", ["jupyterhub-demo.apps.example.org", "A1.Example.ORG", "x" * 63 + ".org"])
def test_plain_host_names_are_accepted_lower_cased(value):
    assert check_host(value) == value.lower()


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("hub.apps.example.org", True),
        ("a.b.apps.example.org", True),
        ("apps.example.org", False),
        ("evil-apps.example.org", False),
        ("apps.example.org.evil.net", False),
        ("evil.example.com", False),
    ],
)
def test_with_a_zenith_base_domain_only_its_subdomains_are_accepted(value, accepted):
    if accepted:
        assert check_host(value, "apps.example.org") == value
    else:
        with pytest.raises(RefusedAddress, match="not under the cluster's Zenith base domain apps.example.org"):
            check_host(value, "apps.example.org")


def reported(host: str, name: str = "jupyterhub") -> ServiceLinkInfo:
    return ServiceLinkInfo(name=name, host=host, ready=True)


def test_a_refused_address_is_no_link_and_its_problem_shows_the_value_shortened():
    [link] = check_links([reported("x" * 100 + ".example.org/<script>")])
    assert (link.url, link.ready) == ("", False)
    assert "“" + "x" * 60 + "…”" in link.problem
    assert "JupyterHub" in link.problem


def test_ingress_hosts_must_be_the_ones_the_console_asked_for():
    expected = {"jupyterhub": "https://jupyterhub-demo.apps.example.org"}
    [good] = check_links([reported("jupyterhub-demo.apps.example.org")], ingress_urls=expected)
    [bad] = check_links([reported("evil.example.com")], ingress_urls=expected)
    assert good.url == "https://jupyterhub-demo.apps.example.org"
    assert bad.url == "" and "not the host the console asked for" in bad.problem


def test_unknown_services_and_repeats_are_left_out():
    found = [reported("a.example.org", "evil"), reported("b.example.org"), reported("c.example.org")]
    assert [(link.name, link.url) for link in check_links(found)] == [("jupyterhub", "https://b.example.org")]


def test_zenith_links_take_the_consoles_scheme_and_port_never_a_reported_one():
    [default] = check_links([reported("hub.apps.example.org")], "apps.example.org")
    [local] = check_links([reported("hub.zenith.localhost")], "zenith.localhost", zenith_origin=("http", 18082))
    [ported] = check_links([reported("hub.apps.example.org:8443")], "apps.example.org", zenith_origin=("http", 80))
    assert default.url == "https://hub.apps.example.org"
    assert local.url == "http://hub.zenith.localhost:18082"
    assert (ported.url, ported.ready) == ("", False)


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://hub.example.org", True),
        ("http://hub.example.org", True),
        ("https://hub.example.org/", False),
        ("https://hub.example.org/x", False),
        ("https://u@hub.example.org", False),
        ("https://hub.example.org:443", False),
        ("javascript:alert(1)", False),
        ("//hub.example.org", False),
    ],
)
def test_only_urls_of_the_recorded_shape_are_followed(url, accepted):
    assert is_service_url(url) is accepted


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://hub.zenith.localhost:18082", True),
        ("https://hub.zenith.localhost:18082", True),
        ("http://hub.zenith.localhost", True),
        ("http://hub.zenith.localhost:443", False),
        ("http://hub.zenith.localhost:018082", False),
        ("http://hub.zenith.localhost:", False),
        ("http://hub.zenith.localhost:18082:18082", False),
        ("http://u@hub.zenith.localhost:18082", False),
    ],
)
def test_the_only_port_followed_is_the_consoles_own_zenith_link_port(settings, url, accepted):
    settings.ZENITH_LINK_PORT = 18082
    assert is_service_url(url) is accepted


def test_shown_values_are_printable():
    assert shown("a\nb\x00") == "a\\nb\\x00"
    assert shown({"x": 1}) == "{'x': 1}"


@pytest.mark.django_db
def test_the_migration_forgets_recorded_links_the_console_would_refuse_now(platform):
    from importlib import import_module

    from django.apps import apps

    from platforms.models import ServiceLink

    ServiceLink.objects.create(platform=platform, name="evil", url="https://evil.example.com", ready=True)
    ServiceLink.objects.create(platform=platform, name="binderhub", url="https://b.example.org/path", ready=True)
    ServiceLink.objects.create(platform=platform, name="jupyterhub", url="https://j.example.org", ready=True)
    import_module("platforms.migrations.0004_untrusted_cluster_input").check_stored_input(apps, None)
    links = {link.name: (link.url, link.ready) for link in ServiceLink.objects.all()}
    assert links == {"binderhub": ("", False), "jupyterhub": ("https://j.example.org", True)}
