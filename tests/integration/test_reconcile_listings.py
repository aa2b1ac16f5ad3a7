"""The reconcile pass's two listings against the real kube-apiserver and helm: what they return and refuse."""

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from platforms import reconcile
from platforms.models import Platform
from platforms.services.errors import NoAnswer
from platforms.services.kube import KubeService
from platforms.services.types import ClusterAccess

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

TINY_CHART = str(Path(__file__).resolve().parents[1] / "fixtures" / "charts" / "tiny")


@pytest.fixture
def access(kubeconfig_text) -> ClusterAccess:
    return ClusterAccess(kubeconfig=kubeconfig_text, context="devstack")


@pytest.fixture
def api(kubeconfig_text) -> client.ApiClient:
    return config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text))


def helm(helm_executable: str, kubeconfig_text: str, tmp_path: Path, *args: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text)
    command = [helm_executable, *args, "--kubeconfig", str(path)]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.fixture
def namespaces(api):
    """Namespaces a test makes (deleted at the end, with what is in them)."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
        made.append(name)
        return name

    yield make
    for name in made:
        client.CoreV1Api(api).delete_namespace(name)


def test_helm_releases_reads_the_current_revision_of_each_release_as_helm_list_does(
    access, api, namespaces, helm_executable, kubeconfig_text, tmp_path
):
    mine, elsewhere, forged = namespaces("rl"), namespaces("rl-other"), namespaces("rl-forged")
    for _ in range(2):  # install, then upgrade: revision 1 superseded, 2 deployed
        helm(helm_executable, kubeconfig_text, tmp_path, "upgrade", "--install", mine, TINY_CHART, "-n", mine)
    # A release whose namespace is named otherwise is not one of the console's.
    helm(helm_executable, kubeconfig_text, tmp_path, "install", "stranger", TINY_CHART, "-n", elsewhere)
    # Whoever may write Secrets in a namespace can forge a record: its labels are checked.
    labels = {"owner": "helm", "name": forged, "status": "deployed-by-mallory", "version": "1e9"}
    client.CoreV1Api(api).create_namespaced_secret(
        forged,
        {"metadata": {"name": f"sh.helm.release.v1.{forged}.v1", "labels": labels}, "type": "helm.sh/release.v1"},
    )
    releases = KubeService().helm_releases(access)
    assert (releases[mine].revision, releases[mine].status) == (2, "deployed")
    assert "stranger" not in releases and forged not in releases
    listed = json.loads(helm(helm_executable, kubeconfig_text, tmp_path, "list", "-A", "-o", "json", "--max", "0"))
    assert {(r["name"], int(r["revision"]), r["status"]) for r in listed if r["name"] == mine} == {
        (mine, 2, "deployed")
    }


def test_service_links_by_namespace_reads_every_platforms_reservations_in_one_listing(access, api, namespaces):
    first, second = namespaces("rl-zen"), namespaces("rl-zen")
    custom = client.CustomObjectsApi(api)
    for namespace in (first, second):
        for service in ("binderhub", "jupyterhub"):
            body = {
                "apiVersion": "zenith.stackhpc.com/v1alpha1",
                "kind": "Reservation",
                "metadata": {"name": service, "labels": {"binderadmin.io/service": service}},
                "spec": {"credentialSecretName": f"{service}-credential"},
            }
            custom.create_namespaced_custom_object("zenith.stackhpc.com", "v1alpha1", namespace, "reservations", body)
    status = {"status": {"phase": "Ready", "fqdn": f"jupyterhub-{first}.zenith.localhost"}}
    custom.patch_namespaced_custom_object_status(
        "zenith.stackhpc.com", "v1alpha1", first, "reservations", "jupyterhub", status
    )
    found = KubeService().service_links_by_namespace(access, "zenith")
    assert sorted((link.name, link.host, link.ready) for link in found[first]) == [
        ("binderhub", "", False),
        ("jupyterhub", f"jupyterhub-{first}.zenith.localhost", True),
    ]
    assert sorted(link.name for link in found[second]) == ["binderhub", "jupyterhub"]


def test_a_cluster_that_does_not_answer_is_reported_as_no_answer(access):
    document = yaml.safe_load(access.kubeconfig)
    document["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    with pytest.raises(NoAnswer, match="could not be reached"):
        KubeService(request_timeout=3).helm_releases(ClusterAccess(kubeconfig=yaml.safe_dump(document)))


def test_a_pass_over_the_local_cluster_fails_only_the_platform_whose_release_is_gone(
    local_cluster, real_services, namespaces, helm_executable, kubeconfig_text, tmp_path
):
    present = namespaces("rl-pass")
    helm(helm_executable, kubeconfig_text, tmp_path, "install", present, TINY_CHART, "-n", present)
    for name in (present, f"rl-gone-{uuid.uuid4().hex[:6]}"):
        Platform.objects.create(name=name, cluster=local_cluster, app_version="0.1.0", status="deployed")
    assert reconcile.run_pass(lambda operation_id: None, lambda platform: None)
    statuses = dict(Platform.objects.values_list("name", "status"))
    assert statuses.pop(present) == "deployed"
    assert list(statuses.values()) == ["failed"]
