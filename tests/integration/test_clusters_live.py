"""Registering a cluster checks it against the real local kube-apiserver."""

import pytest
import yaml
from django.urls import reverse

from devstack import config as devstack_config
from platforms.models import Cluster

pytestmark = pytest.mark.integration


def kubeconfig_with(text: str, token: str | None = None, server: str | None = None) -> str:
    document = yaml.safe_load(text)
    if token is not None:
        document["users"][0]["user"]["token"] = token
    if server is not None:
        document["clusters"][0]["cluster"]["server"] = server
    return yaml.safe_dump(document)


def register(client, kubeconfig: str):
    return client.post(
        reverse("cluster_create"),
        {"name": "local", "kubeconfig": kubeconfig, "context": "devstack", "exposure": "zenith"},
    )


def test_good_kubeconfig_registers_with_the_real_server_version(admin_client, kubeconfig_text):
    response = register(admin_client, kubeconfig_text)
    assert response.status_code == 302
    cluster = Cluster.objects.get(name="local")
    assert cluster.server_version == devstack_config.KUBERNETES_VERSION
    # and the stored, encrypted kubeconfig still reaches the cluster for a later check
    assert admin_client.post(reverse("cluster_check", args=["local"])).status_code == 302
    cluster.refresh_from_db()
    assert cluster.check_error == ""


def test_wrong_token_is_a_clear_form_error(admin_client, kubeconfig_text):
    response = register(admin_client, kubeconfig_with(kubeconfig_text, token="wrong-token"))
    assert response.status_code == 200
    assert "The cluster rejected the credentials (HTTP 401)" in response.content.decode()
    assert not Cluster.objects.exists()


def test_dead_port_is_a_clear_form_error(admin_client, kubeconfig_text, settings):
    response = register(admin_client, kubeconfig_with(kubeconfig_text, server="https://127.0.0.1:1"))
    assert response.status_code == 200
    assert "could not be reached" in response.content.decode()
    assert not Cluster.objects.exists()
