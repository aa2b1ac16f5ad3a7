"""Cluster pages: only admins register clusters; kubeconfigs are checked, encrypted and never shown."""

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from platforms.models import Cluster
from platforms.services.errors import BadInput, Unavailable
from tests.conftest import KUBECONFIG

VIEWS = [
    ("get", "cluster_list", False),
    ("get", "cluster_create", False),
    ("get", "cluster_detail", True),
    ("get", "cluster_edit", True),
    ("post", "cluster_check", True),
    ("post", "cluster_delete", True),
]


def url(name: str, needs_name: bool) -> str:
    return reverse(name, args=["prod"]) if needs_name else reverse(name)


@pytest.mark.parametrize(("method", "name", "needs_name"), VIEWS)
def test_anonymous_is_sent_to_sign_in(cluster, method, name, needs_name):
    response = getattr(Client(), method)(url(name, needs_name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("oidc_authentication_init"))


@pytest.mark.parametrize(("method", "name", "needs_name"), VIEWS)
def test_non_admin_gets_403_saying_why(cluster, member_client, method, name, needs_name):
    response = getattr(member_client, method)(url(name, needs_name))
    assert response.status_code == 403
    assert "Only console admins can" in response.content.decode()
    assert Cluster.objects.filter(name="prod").exists()


@pytest.mark.parametrize(("method", "name", "needs_name"), [v for v in VIEWS if v[0] == "get"])
def test_admin_sees_cluster_pages_without_the_kubeconfig(cluster, admin_client, method, name, needs_name):
    response = admin_client.get(url(name, needs_name))
    assert response.status_code == 200
    assert "secret-token" not in response.content.decode()


def register(client: Client, **overrides):
    data = {"name": "lab", "kubeconfig": KUBECONFIG, "context": "", "exposure": "zenith", "ingress_tls": "on"}
    data.update(overrides)
    return client.post(reverse("cluster_create"), data)


def test_admin_registers_cluster_checked_and_encrypted(admin_client, fake_kube):
    response = register(admin_client)
    cluster = Cluster.objects.get(name="lab")
    assert response.status_code == 302
    assert response["Location"] == cluster.get_absolute_url()
    assert cluster.server_version == "v1.34.4"
    assert cluster.checked_at is not None
    assert cluster.created_by.username == "alice"
    assert "secret-token" not in cluster.kubeconfig_encrypted
    assert yaml.safe_load(cluster.kubeconfig) == {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c1", "cluster": {"server": "https://127.0.0.1:16443", "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": "u1", "user": {"token": "secret-token"}}],
        "contexts": [{"name": "ctx-a", "context": {"cluster": "c1", "user": "u1"}}],
        "current-context": "ctx-a",
    }
    assert cluster.skips_tls_verify
    assert fake_kube.calls[0].context == "ctx-a"  # the current context, named in the cut-down kubeconfig


def test_kubeconfig_can_be_uploaded_and_a_context_chosen(admin_client, fake_kube):
    upload = SimpleUploadedFile("config", KUBECONFIG.encode())
    response = admin_client.post(
        reverse("cluster_create"),
        {"name": "lab", "kubeconfig_file": upload, "context": "ctx-b", "exposure": "zenith"},
    )
    assert response.status_code == 302
    assert Cluster.objects.get(name="lab").context == "ctx-b"
    assert fake_kube.calls[0].context == "ctx-b"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kubeconfig": ""}, "Paste or upload the cluster"),
        ({"kubeconfig": "clusters: ["}, "not valid YAML"),
        ({"kubeconfig": "apiVersion: v1\nkind: Config\n"}, "has no contexts"),
        ({"context": "nope"}, "has no context &#x27;nope&#x27;; it has: ctx-a, ctx-b"),
        ({"exposure": "ingress"}, "Ingress exposure needs a base domain"),
        ({"exposure": "ingress", "ingress_base_domain": "not a domain"}, "Enter a DNS domain"),
        ({"name": "Lab_1"}, "lowercase letters"),
    ],
)
def test_bad_cluster_input_is_a_form_error_and_nothing_is_saved(admin_client, fake_kube, overrides, message):
    response = register(admin_client, **overrides)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Cluster.objects.exists()


@pytest.mark.parametrize(
    "error",
    [BadInput("The cluster rejected the credentials (HTTP 401)."), Unavailable("could not be reached: refused")],
)
def test_failed_cluster_check_is_a_form_error(admin_client, fake_kube, error):
    fake_kube.error = error
    response = register(admin_client)
    assert response.status_code == 200
    assert "The cluster check failed" in response.content.decode()
    assert str(error) in response.content.decode()
    assert not Cluster.objects.exists()


def test_edit_with_empty_kubeconfig_keeps_the_stored_one(admin_client, cluster, fake_kube):
    response = admin_client.post(
        reverse("cluster_edit", args=["prod"]),
        {"name": "prod", "kubeconfig": "", "context": "ctx-b", "exposure": "zenith"},
    )
    assert response.status_code == 302
    cluster.refresh_from_db()
    assert cluster.context == "ctx-b"
    # Only the chosen context is kept.
    stored = yaml.safe_load(cluster.kubeconfig)
    assert [entry["name"] for entry in stored["contexts"]] == ["ctx-b"]
    assert stored["users"] == [{"name": "u1", "user": {"token": "secret-token"}}]


def test_check_now_records_the_error(admin_client, cluster, fake_kube):
    fake_kube.error = Unavailable("The cluster's API server could not be reached: refused")
    response = admin_client.post(reverse("cluster_check", args=["prod"]), headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert "could not be reached" in body
    cluster.refresh_from_db()
    assert "could not be reached" in cluster.check_error


def test_check_now_records_the_version(admin_client, cluster, fake_kube):
    fake_kube.version = "v1.35.0"
    response = admin_client.post(reverse("cluster_check", args=["prod"]))
    assert response.status_code == 302
    cluster.refresh_from_db()
    assert (cluster.server_version, cluster.check_error) == ("v1.35.0", "")


def test_cluster_with_platforms_cannot_be_deleted(admin_client, platform):
    response = admin_client.post(reverse("cluster_delete", args=["prod"]), follow=True)
    assert "still has 1 platform" in response.content.decode()
    assert Cluster.objects.filter(name="prod").exists()


def test_unused_cluster_is_deleted(admin_client, cluster):
    response = admin_client.post(reverse("cluster_delete", args=["prod"]))
    assert response.status_code == 302
    assert not Cluster.objects.exists()


def test_cluster_page_charts_what_its_platforms_request(admin_client, cluster, platform):
    from platforms.models import Platform

    Platform.objects.create(
        name="big", cluster=cluster, app_version="0.1.0", notebook_cpus=4, notebook_ram_gb=16, servers_per_user=0
    )
    response = admin_client.get(reverse("cluster_detail", args=["prod"]))
    capacity = response.context["capacity"]
    rows = {row["name"]: row for row in capacity["rows"]}
    assert (rows["demo"]["cpus"], rows["demo"]["ram_gb"], rows["demo"]["storage_gb"]) == (3.0, 6, 20)
    assert (rows["big"]["cpus"], rows["big"]["ram_gb"]) == (4.0, 16)
    assert capacity["totals"] == {"cpus": 7.0, "ram_gb": 22, "storage_gb": 40}
    assert rows["big"]["bars"]["ram_gb"] == capacity["width"]  # the largest fills the chart
    assert 'aria-label="16 GB RAM"' in response.content.decode()


def test_removing_a_cluster_asks_first_and_redirects_htmx_to_the_list(admin_client, cluster):
    page = admin_client.get(reverse("cluster_detail", args=["prod"])).content.decode()
    assert 'hx-confirm="Remove cluster prod from the console?' in page
    response = admin_client.post(reverse("cluster_delete", args=["prod"]), headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == reverse("cluster_list")
    assert not Cluster.objects.exists()


def test_the_context_comes_after_the_kubeconfig_and_fields_belong_to_their_exposure(admin_client):
    response = admin_client.get(reverse("cluster_create"))
    form = response.context["form"]
    names = list(form.fields)
    assert names.index("context") > names.index("kubeconfig")
    body = response.content.decode()
    assert 'data-exposure="ingress"' in body and 'data-exposure="zenith"' in body
    assert "Ingress tls" not in body and "Serve services over HTTPS" in body
    assert 'list="kubeconfig-contexts"' in body


def test_a_pasted_kubeconfig_offers_its_contexts(admin_client):
    response = admin_client.post(
        reverse("kubeconfig_contexts"), {"kubeconfig": KUBECONFIG}, headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert "<html" not in body
    assert '<option value="ctx-a"><option value="ctx-b">' in body
    junk = admin_client.post(reverse("kubeconfig_contexts"), {"kubeconfig": "clusters: ["}).content.decode()
    assert "<option" not in junk


def test_only_admins_read_a_kubeconfigs_contexts(member_client):
    assert member_client.post(reverse("kubeconfig_contexts"), {"kubeconfig": KUBECONFIG}).status_code == 403


def test_a_zenith_base_domain_is_kept_for_zenith_clusters_only(admin_client, fake_kube):
    register(admin_client, zenith_base_domain="Apps.Example.org.")
    assert Cluster.objects.get(name="lab").zenith_base_domain == "apps.example.org"
    response = register(admin_client, name="lab2", zenith_base_domain="not a domain")
    assert "Enter a DNS domain" in response.content.decode()
