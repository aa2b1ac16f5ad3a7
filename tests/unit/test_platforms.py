"""Platform pages: the launch form's options, validation and defaults, who sees what, and operations."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from platforms.models import Cluster, Operation, Platform, ServiceLink
from platforms.services import charts
from platforms.services.errors import Unavailable
from tests.conftest import make_user

LAUNCH_DEFAULTS = {
    "servers_per_user": "3",
    "notebook_cpus": "1",
    "notebook_ram_gb": "2",
    "notebook_storage_gb": "10",
    "registry_storage_gb": "10",
}


def launch(client: Client, cluster, **overrides):
    data = {"name": "demo2", "cluster": str(cluster.pk), "app_version": "0.2.0", **LAUNCH_DEFAULTS, **overrides}
    return client.post(reverse("platform_create"), data)


ADMIN_ONLY = [
    ("get", "platform_create", False),
    ("post", "platform_create", False),
    ("get", "platform_edit", True),
    ("post", "platform_edit", True),
    ("get", "platform_delete", True),
    ("post", "platform_delete", True),
    ("post", "app_versions_refresh", False),
    ("post", "platform_validate", False),
]


def url(name: str, needs_name: bool) -> str:
    return reverse(name, args=["demo"]) if needs_name else reverse(name)


@pytest.mark.parametrize(("method", "name", "needs_name"), [*ADMIN_ONLY, ("get", "platform_detail", True)])
def test_anonymous_is_sent_to_sign_in(platform, method, name, needs_name):
    response = getattr(Client(), method)(url(name, needs_name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("oidc_authentication_init"))


@pytest.mark.parametrize(("method", "name", "needs_name"), ADMIN_ONLY)
def test_non_admin_gets_403_saying_why(platform, member_client, stub_app_versions, method, name, needs_name):
    response = getattr(member_client, method)(url(name, needs_name), {"confirm_name": "demo"})
    assert response.status_code == 403
    assert "Only console admins can" in response.content.decode()
    assert not Operation.objects.exists()


def test_launch_form_offers_the_options_with_azimuth_defaults(admin_client, cluster, stub_app_versions):
    response = admin_client.get(reverse("platform_create"))
    form = response.context["form"]
    assert list(form.fields) == [
        "name",
        "cluster",
        "app_version",
        "servers_per_user",
        "notebook_cpus",
        "notebook_ram_gb",
        "notebook_storage_gb",
        "registry_storage_gb",
        "expires_at",
    ]
    labels = [form.fields[f].label for f in form.fields]
    assert labels == [
        "Platform name",
        "Kubernetes cluster",
        "App version",
        "Servers per user",
        "Notebook CPUs",
        "Notebook RAM (GB)",
        "Notebook storage (GB)",
        "Container registry storage (GB)",
        "Expires on",
    ]
    assert form["app_version"].value() == "0.2.0"  # the newest is the default
    assert [form[f].value() for f in LAUNCH_DEFAULTS] == [3, 1, 2, 10, 10]
    body = response.content.decode()
    assert "Set to 0 for unlimited." in body
    assert "The storage allocated to BinderHub&#x27;s docker image registry" in body


def test_a_clusters_page_offers_to_launch_onto_it_with_the_cluster_chosen(admin_client, cluster, stub_app_versions):
    other = Cluster(name="other")
    other.kubeconfig = cluster.kubeconfig
    other.save()
    page = admin_client.get(reverse("cluster_detail", args=["other"])).content.decode()
    launch = f"{reverse('platform_create')}?cluster=other"
    assert f'<a href="{launch}">Launch one onto it</a>' in page
    form = admin_client.get(launch).context["form"]
    assert form["cluster"].value() == other.pk
    assert admin_client.get(f"{reverse('platform_create')}?cluster=nope").context["form"]["cluster"].value() is None


def test_launch_records_platform_and_install_operation(admin_client, admin_user, cluster, stub_app_versions):
    response = launch(admin_client, cluster, notebook_cpus="1.5", servers_per_user="0")
    platform = Platform.objects.get(name="demo2")
    assert response.status_code == 302
    assert response["Location"] == platform.get_absolute_url()
    assert (platform.servers_per_user, platform.notebook_cpus, platform.app_version) == (0, Decimal("1.5"), "0.2.0")
    assert platform.created_by == platform.updated_by == admin_user
    assert platform.status == Platform.Status.PENDING
    operation = platform.operations.get()
    assert (operation.kind, operation.state, operation.actor) == ("install", "queued", admin_user)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "Demo"}, "name", "lowercase letters"),
        ({"name": "1demo"}, "name", "starting with a letter"),
        ({"name": "demo-"}, "name", "ending with a letter or digit"),
        ({"name": "a" * 50}, "name", "at most 49"),
        ({"name": "démo"}, "name", "lowercase letters"),
        ({"name": ""}, "name", "required"),
        ({"name": "demo"}, "name", "already exists"),
        ({"servers_per_user": "-1"}, "servers_per_user", "greater than or equal to 0"),
        ({"servers_per_user": "2.5"}, "servers_per_user", "whole number"),
        ({"notebook_cpus": "0.4"}, "notebook_cpus", "greater than or equal to 0.5"),
        ({"notebook_cpus": "65"}, "notebook_cpus", "less than or equal to 64"),
        ({"notebook_ram_gb": "513"}, "notebook_ram_gb", "less than or equal to 512"),
        ({"notebook_ram_gb": "0"}, "notebook_ram_gb", "greater than or equal to 1"),
        ({"notebook_storage_gb": "2001"}, "notebook_storage_gb", "less than or equal to 2000"),
        ({"registry_storage_gb": "9"}, "registry_storage_gb", "greater than or equal to 10"),
        ({"app_version": "9.9.9"}, "app_version", "Select a valid choice"),
    ],
)
def test_launch_rejects_bad_options_beside_their_field(
    admin_client, platform, cluster, stub_app_versions, overrides, field, message
):
    response = launch(admin_client, cluster, **overrides)
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors.get(field, []))
    assert message in errors
    assert Platform.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"servers_per_user": "-1"}, "servers_per_user"), ({"registry_storage_gb": "99999"}, "registry_storage_gb")],
)
def test_a_bound_is_said_once_beside_its_field(admin_client, cluster, stub_app_versions, overrides, field):
    response = launch(admin_client, cluster, **overrides)
    assert len(response.context["form"].errors[field]) == 1


def test_a_taken_name_is_said_in_plain_words(admin_client, platform, cluster, stub_app_versions):
    response = launch(admin_client, cluster, name="demo")
    assert response.context["form"].errors["name"] == ["A platform with this name already exists: choose another name."]


def test_the_names_rules_are_in_its_help_before_any_error(admin_client, cluster, stub_app_versions):
    body = admin_client.get(reverse("platform_create")).content.decode()
    assert "lowercase letters, digits and &#x27;-&#x27;, starting with a letter" in body
    assert "at most 49 characters" in body


def test_launch_limits_are_admin_configurable(admin_client, cluster, stub_app_versions, settings):
    settings.LAUNCH_MAX_CPUS = 4
    response = launch(admin_client, cluster, notebook_cpus="5")
    assert "less than or equal to 4" in " ".join(response.context["form"].errors["notebook_cpus"])


def test_unreadable_chart_repository_is_a_clear_message(admin_client, cluster, monkeypatch):
    def fail(refresh=False):
        raise Unavailable("The chart repository http://127.0.0.1:1 could not be reached")

    monkeypatch.setattr(charts, "app_versions", fail)
    response = admin_client.get(reverse("platform_create"))
    assert response.status_code == 200
    assert "app versions could not be read" in response.content.decode()
    assert launch(admin_client, cluster).status_code == 200
    assert not Platform.objects.filter(name="demo2").exists()


def test_refresh_re_reads_the_repository(admin_client, monkeypatch):
    calls = []
    monkeypatch.setattr(charts, "app_versions", lambda refresh=False: calls.append(refresh) or ["0.1.0"])
    response = admin_client.post(reverse("app_versions_refresh"), {"next": "https://evil.example.org/"})
    assert calls == [True]
    assert response["Location"] == reverse("platform_create")


def test_edit_upgrades_and_records_who(admin_client, admin_user, platform, stub_app_versions):
    response = admin_client.post(
        reverse("platform_edit", args=["demo"]), {"app_version": "0.2.0", **LAUNCH_DEFAULTS, "notebook_ram_gb": "4"}
    )
    assert response.status_code == 302
    platform.refresh_from_db()
    assert (platform.app_version, platform.notebook_ram_gb, platform.updated_by) == ("0.2.0", 4, admin_user)
    assert platform.status == Platform.Status.UPGRADING
    assert platform.operations.get().kind == "upgrade"


def test_edit_refuses_a_downgrade_with_a_reason(admin_client, platform, stub_app_versions):
    platform.app_version = "0.2.0"
    platform.save()
    response = admin_client.post(reverse("platform_edit", args=["demo"]), {"app_version": "0.1.0", **LAUNCH_DEFAULTS})
    assert response.status_code == 200
    assert "Downgrading from 0.2.0 to 0.1.0 is not supported" in response.content.decode()
    assert not Operation.objects.exists()


def test_edit_keeps_a_version_that_left_the_repository(admin_client, platform, stub_app_versions):
    platform.app_version = "0.0.9"
    platform.save()
    response = admin_client.get(reverse("platform_edit", args=["demo"]))
    assert "0.0.9 (current; no longer in the repository)" in response.content.decode()


def test_edit_while_an_operation_runs_is_refused(admin_client, admin_user, platform, stub_app_versions):
    Operation.objects.request(platform, Operation.Kind.INSTALL, admin_user)
    response = admin_client.post(reverse("platform_edit", args=["demo"]), {"app_version": "0.2.0", **LAUNCH_DEFAULTS})
    assert response.status_code == 200
    assert "busy with another operation" in response.content.decode()
    assert platform.operations.count() == 1


def test_database_allows_one_active_operation_per_platform(admin_user, platform):
    from django.db import IntegrityError, transaction

    Operation.objects.create(platform=platform, kind="install", actor=admin_user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Operation.objects.create(platform=platform, kind="upgrade", actor=admin_user)


def test_delete_needs_the_typed_name(admin_client, platform):
    response = admin_client.post(reverse("platform_delete", args=["demo"]), {"confirm_name": "dem"})
    assert response.status_code == 400
    assert "Type demo exactly to confirm." in response.content.decode()
    assert not Operation.objects.exists()


def test_delete_with_the_typed_name_requests_uninstall(admin_client, platform):
    response = admin_client.post(reverse("platform_delete", args=["demo"]), {"confirm_name": "demo"})
    assert response.status_code == 302
    platform.refresh_from_db()
    assert platform.status == Platform.Status.UNINSTALLING
    assert platform.operations.get().kind == "uninstall"


def test_outsider_neither_lists_nor_opens_a_platform(outsider_client, platform):
    assert "demo" not in outsider_client.get(reverse("platform_list")).content.decode()
    assert outsider_client.get(reverse("platform_detail", args=["demo"])).status_code == 404


@pytest.mark.parametrize("group", ["/platforms/demo", "/platforms/demo/jupyterhub", "/platform-users"])
def test_member_of_a_platform_group_sees_it_but_cannot_manage(platform, group):
    client = Client()
    client.force_login(make_user("carol", [group]))
    assert 'href="/platforms/demo/"' in client.get(reverse("platform_list")).content.decode()
    detail = client.get(reverse("platform_detail", args=["demo"])).content.decode()
    assert "Notebook RAM" in detail
    assert "/platforms/demo/edit/" not in detail


def test_admin_detail_shows_options_and_operations(admin_client, admin_user, platform):
    Operation.objects.request(platform, Operation.Kind.INSTALL, admin_user)
    body = admin_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    assert "unlimited" not in body and "Servers per user" in body
    assert 'data-testid="operations"' in body and "Install" in body
    assert f"<dd>{platform.cluster.name}</dd>" in body
    assert f"<dd>{admin_user.username}, <time" in body  # created by, and last changed by


def test_detail_names_nobody_when_its_people_are_gone(admin_client, admin_user, platform):
    Platform.objects.filter(pk=platform.pk).update(created_by=None, updated_by=None)
    body = admin_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    assert body.count("<dd>—, <time") == 2


def list_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("platform_list")).status_code == 200
    return len(queries)


def test_platform_list_queries_do_not_grow_with_platforms(admin_client, cluster, admin_user):
    def add(count: int, start: int) -> None:
        Platform.objects.bulk_create(
            Platform(name=f"p{i:03d}", cluster=cluster, app_version="0.1.0", created_by=admin_user)
            for i in range(start, start + count)
        )

    add(5, 0)
    few = list_queries(admin_client)
    add(295, 5)
    many = list_queries(admin_client)
    assert few == many
    last_page = admin_client.get(reverse("platform_list"), {"page": 12}).content.decode()
    assert "p299" in last_page and "Page 12 of 12 (300 platforms)" in last_page


def test_platform_list_counts_platforms_without_the_joins_of_its_rows(admin_client, platform):
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(reverse("platform_list")).status_code == 200
    counts = [query["sql"] for query in queries if "COUNT(" in query["sql"]]
    assert len(counts) == 1 and "JOIN" not in counts[0], counts


def test_platform_list_shows_each_platforms_own_links_once(admin_client, cluster):
    alpha, beta, gamma = (
        Platform.objects.create(name=name, cluster=cluster, app_version="0.1.0") for name in ("alpha", "beta", "gamma")
    )
    ServiceLink.objects.create(platform=alpha, name="binderhub", url="https://b.example", ready=True)
    ServiceLink.objects.create(platform=alpha, name="jupyterhub", url="https://j.example", ready=False)
    ServiceLink.objects.create(platform=gamma, name="jupyterhub", url="https://j.example", ready=True)
    body = admin_client.get(reverse("platform_list")).content.decode()
    rows = {name: row for row in body.split("<tr>")[2:] if (name := row.split("</a>")[0].rsplit(">", 1)[1])}
    assert sorted(rows) == ["alpha", "beta", "gamma"] and body.count("<tr>") == 4  # the header and one each
    assert 'href="/platforms/alpha/services/binderhub/" data-testid="service-binderhub">BinderHub</a>' in rows["alpha"]
    assert 'class="service-link waiting" href="/platforms/alpha/services/jupyterhub/"' in rows["alpha"]
    assert "service-link" not in rows["beta"] and '<span class="muted">—</span>' in rows["beta"]
    assert "binderhub" not in rows["gamma"] and "JupyterHub</a>" in rows["gamma"] and "waiting" not in rows["gamma"]


def test_platform_list_without_platforms_and_past_its_last_page(admin_client, cluster):
    assert 'data-testid="empty"' in admin_client.get(reverse("platform_list")).content.decode()
    Platform.objects.create(name="only", cluster=cluster, app_version="0.1.0")
    body = admin_client.get(reverse("platform_list"), {"page": 7}).content.decode()
    assert ">only</a>" in body and 'data-testid="empty"' not in body


def test_inline_validation_returns_the_field_errors_as_a_fragment(admin_client, platform, stub_app_versions):
    response = admin_client.post(
        reverse("platform_validate"), {"_field": "name", "name": "demo"}, headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert 'id="id_name-errors"' in body and "already exists" in body


def test_inline_validation_of_a_good_value_clears_the_errors(admin_client, cluster, stub_app_versions):
    response = admin_client.post(
        reverse("platform_validate"), {"_field": "registry_storage_gb", "registry_storage_gb": "20"}
    )
    assert response.content.decode() == '<div id="id_registry_storage_gb-errors" class="field-errors"></div>\n'


def test_inline_validation_of_an_unknown_field_is_refused(admin_client, stub_app_versions):
    assert admin_client.post(reverse("platform_validate"), {"_field": "secrets_encrypted"}).status_code == 400


def test_edit_refuses_to_shrink_the_registry(admin_client, platform, stub_app_versions):
    Platform.objects.filter(pk=platform.pk).update(registry_storage_gb=50)
    data = {**LAUNCH_DEFAULTS, "app_version": "0.1.0", "registry_storage_gb": "20"}
    response = admin_client.post(reverse("platform_edit", args=["demo"]), data)
    assert "cannot shrink: keep at least 50 GB" in response.content.decode()
    assert not Operation.objects.exists()


def test_the_form_says_what_part_of_the_cpus_and_ram_a_notebook_reserves(admin_client, cluster, stub_app_versions):
    body = admin_client.get(reverse("platform_create")).content.decode()
    assert "the most it may use; 25% of it is reserved on its node" in body
    assert "the most it may use; 50% of it is reserved on its node" in body
