"""A kubeconfig is code: the console never runs it, never reads files for it, and contacts only allowed hosts."""

import base64
import logging
import re

import pytest
import yaml
from django.urls import reverse

from platforms.models import Cluster
from platforms.services import helm, kube, kubeconfig
from platforms.services.errors import BadInput
from platforms.services.types import ClusterAccess
from tests.conftest import KUBECONFIG

CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()


def config(cluster: dict | None = None, user: dict | None = None) -> str:
    """A one-context kubeconfig with these cluster and user fields."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:1", "certificate-authority-data": CA}}
            ],
            "users": [{"name": "u", "user": user or {"token": "abc"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )


def exec_user(marker) -> dict:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "/bin/sh",
            "args": ["-c", f"touch {marker}"],
        }
    }


def register(client, text: str):
    return client.post(reverse("cluster_create"), {"name": "lab", "kubeconfig": text, "exposure": "zenith"})


def test_an_exec_plugin_is_refused_and_never_run_even_by_the_real_kubernetes_client(admin_client, tmp_path):
    marker = tmp_path / "ran"
    response = register(admin_client, config(user=exec_user(marker)))
    body = response.content.decode()
    assert response.status_code == 200
    assert "uses exec, which the console refuses" in body
    assert "token (token)" in body  # what to use instead
    assert not marker.exists()
    assert not Cluster.objects.exists()


def test_a_stored_kubeconfig_is_checked_again_before_kubernetes_or_helm_use_it(cluster, tmp_path):
    """One stored before the checks existed (or written to the database by hand) is refused at use."""
    marker = tmp_path / "ran"
    cluster.kubeconfig = config(user=exec_user(marker))
    cluster.save()
    with pytest.raises(BadInput, match="exec"):
        kube.KubeService(request_timeout=1).server_version(cluster.access())
    with pytest.raises(BadInput, match="exec"):
        helm.HelmService("helm", 10).release("demo", cluster.access())
    assert not marker.exists()


@pytest.mark.parametrize(
    ("user", "cluster", "message"),
    [
        ({"tokenFile": "/etc/hostname"}, None, "uses tokenFile, which the console refuses: the console does not read"),
        ({"client-certificate": "/etc/hostname", "client-key": "/etc/hostname"}, None, "client-certificate-data"),
        ({"auth-provider": {"name": "oidc"}}, None, "run a plugin"),
        ({"username": "a", "password": "b"}, None, "basic authentication"),
        ({"as": "system:admin", "token": "abc"}, None, "has the field 'as'"),
        ({"token": "abc\n"}, None, "one line of visible characters"),
        ({"token": "two words"}, None, "one line of visible characters"),
        ({"client-certificate-data": "not base64!"}, None, "no inline credentials"),
        ({"client-certificate-data": "not base64!", "client-key-data": CA}, None, "must be base64"),
        (
            None,
            {"server": "https://127.0.0.1:1", "certificate-authority": "/etc/ssl/certs/ca.pem"},
            "certificate-authority-data",
        ),
        (None, {"server": "https://127.0.0.1:1", "proxy-url": "http://127.0.0.1:3128"}, "proxy-url"),
        (None, {"server": "https://127.0.0.1:1", "extensions": []}, "has the field 'extensions'"),
        (None, {"server": "http://127.0.0.1:1"}, "must start with https://"),
        (None, {"server": "https://me:pw@127.0.0.1:1"}, "https://host[:port][/path] only"),
        (None, {"server": "https://127.0.0.1:99999"}, "invalid port"),
        (None, {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": "yes"}, "must be true or false"),
    ],
)
def test_every_field_that_runs_reads_or_redirects_is_refused_with_what_to_use_instead(user, cluster, message):
    with pytest.raises(BadInput, match=re.escape(message)):
        kubeconfig.check(config(cluster=cluster, user=user))


def test_a_refused_file_path_says_the_same_whether_or_not_the_file_exists(tmp_path):
    existing = tmp_path / "key"
    existing.write_text("-----BEGIN PRIVATE KEY-----")
    messages = []
    for path in (existing, tmp_path / "missing"):
        with pytest.raises(BadInput) as caught:
            kubeconfig.check(config(user={"client-certificate": str(path), "client-key": str(path)}))
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "PRIVATE KEY" not in messages[0]


def test_a_token_ending_in_a_newline_is_a_form_error_not_a_500(admin_client):
    response = register(admin_client, config(user={"token": "abc\n"}))
    assert response.status_code == 200
    assert "one line of visible characters" in response.content.decode()


def test_the_checked_kubeconfig_keeps_only_the_chosen_context_and_known_fields():
    checked = kubeconfig.check(KUBECONFIG, "ctx-b")
    document = yaml.safe_load(checked.text)
    assert [entry["name"] for entry in document["contexts"]] == ["ctx-b"]
    assert document["current-context"] == "ctx-b"
    assert (checked.server, checked.skips_tls_verify) == ("https://127.0.0.1:16443", True)


@pytest.mark.parametrize(
    ("allowed", "server", "accepted"),
    [
        ("k8s.example.org", "https://k8s.example.org:6443", True),
        ("k8s.example.org", "https://K8S.example.org", True),
        ("k8s.example.org", "https://127.0.0.1:18080", False),
        (".example.org", "https://api.prod.example.org", True),
        (".example.org", "https://example.org.evil.net", False),
        ("10.0.0.1", "https://10.0.0.1:6443", True),
        ("10.0.0.1", "https://[::1]:6443", False),
    ],
)
def test_cluster_api_hosts_limits_which_servers_may_be_registered(settings, allowed, server, accepted):
    settings.CLUSTER_API_HOSTS = [allowed]
    text = config(cluster={"server": server, "certificate-authority-data": CA})
    if accepted:
        assert kubeconfig.check(text).server == server
    else:
        with pytest.raises(BadInput, match="is not one this console may register"):
            kubeconfig.check(text)


def test_a_host_outside_cluster_api_hosts_is_never_contacted(admin_client, settings, monkeypatch):
    settings.CLUSTER_API_HOSTS = ["k8s.example.org"]
    asked = []
    monkeypatch.setattr(kube.KubeService, "server_version", lambda self, access: asked.append(access))
    response = register(admin_client, config())
    assert "127.0.0.1 is not one this console may register" in response.content.decode()
    assert asked == []


def test_a_failed_cluster_form_never_sends_the_kubeconfig_back(admin_client):
    response = register(admin_client, KUBECONFIG.replace("secret-token", '"sekrit sekrit"'))
    body = response.content.decode()
    assert response.status_code == 200
    assert "one line of visible characters" in body
    assert "sekrit" not in body
    assert "127.0.0.1:16443" not in body
    assert "paste or upload it again" in body


def test_an_oversized_paste_is_a_form_error_not_a_400_page(admin_client):
    huge = "# " + "x" * (5 * 1024 * 1024)
    response = register(admin_client, huge)
    assert (response.status_code, response["Location"]) == (303, reverse("cluster_create") + "?too_large=1")
    page = admin_client.get(response["Location"])
    assert page.status_code == 200
    assert "too large: a kubeconfig is at most 256 KB" in page.content.decode()


def test_an_insecure_cluster_is_flagged_where_it_is_shown(admin_client, cluster):
    Cluster.objects.filter(pk=cluster.pk).update(skips_tls_verify=True)
    for name, args in (("cluster_list", []), ("cluster_detail", ["prod"])):
        body = admin_client.get(reverse(name, args=args)).content.decode()
        assert "TLS not verified" in body, name


def test_a_403_is_logged_as_one_line_without_a_traceback(member_client, caplog):
    with caplog.at_level(logging.INFO):
        response = member_client.get(reverse("cluster_list"))
    assert response.status_code == 403
    refusals = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(refusals) == 1
    assert refusals[0].exc_info is None
    assert "user=bob path=/clusters/ reason=Only console admins can manage clusters" in refusals[0].getMessage()


def test_a_checked_kubeconfig_reaches_the_real_kubernetes_client_without_files(monkeypatch):
    """With a checked kubeconfig the client has nothing to run or read: an unreachable server is Unavailable."""
    from platforms.services.errors import Unavailable

    with pytest.raises(Unavailable):
        kube.KubeService(request_timeout=1).server_version(ClusterAccess(kubeconfig=config()))
