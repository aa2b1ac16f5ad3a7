"""Smoke tests of the Kubernetes and Helm adapters against the real local kube-apiserver and helm."""

import logging
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from devstack import config as devstack_config
from platforms.services.errors import BadInput, NotFound, Unavailable
from platforms.services.helm import HelmService
from platforms.services.kube import KubeService
from platforms.services.types import ClusterAccess, ReleaseSpec

pytestmark = pytest.mark.integration

TINY_CHART = str(Path(__file__).resolve().parents[1] / "fixtures" / "charts" / "tiny")


@pytest.fixture
def cluster(kubeconfig_text) -> ClusterAccess:
    return ClusterAccess(kubeconfig=kubeconfig_text, context="devstack")


def core_api(access: ClusterAccess) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(access.kubeconfig)))


def test_kubernetes_client_reads_version_of_local_apiserver(cluster):
    version = KubeService().server_version(cluster)
    assert version.git_version == devstack_config.KUBERNETES_VERSION
    assert (version.major, version.minor) == ("1", "34")


def test_wrong_token_is_reported_as_rejected_credentials(cluster):
    document = yaml.safe_load(cluster.kubeconfig)
    document["users"][0]["user"]["token"] = "not-a-valid-token"
    with pytest.raises(BadInput, match="rejected the credentials"):
        KubeService().server_version(ClusterAccess(kubeconfig=yaml.safe_dump(document)))


def test_dead_port_is_reported_as_unreachable(cluster):
    document = yaml.safe_load(cluster.kubeconfig)
    document["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    with pytest.raises(Unavailable, match="could not be reached"):
        KubeService(request_timeout=3).server_version(ClusterAccess(kubeconfig=yaml.safe_dump(document)))


@pytest.mark.parametrize("text", ["", "just words", "clusters: [", "apiVersion: v1\nkind: Config\n"])
def test_unusable_kubeconfig_is_bad_input(text):
    with pytest.raises(BadInput):
        KubeService().server_version(ClusterAccess(kubeconfig=text))


def test_node_ports_are_those_of_nodeport_and_loadbalancer_services(cluster):
    api = core_api(cluster)
    namespace = f"ports-{uuid.uuid4().hex[:8]}"
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        taken = {}
        for kind in ("NodePort", "LoadBalancer", "ClusterIP"):
            port = client.V1ServicePort(port=80)
            spec = client.V1ServiceSpec(type=kind, ports=[port], selector={"app": "none"})
            body = client.V1Service(metadata=client.V1ObjectMeta(name=kind.lower()), spec=spec)
            taken[kind] = api.create_namespaced_service(namespace, body).spec.ports[0].node_port
        assert taken["ClusterIP"] is None
        found = KubeService().node_ports(cluster)
        assert {taken["NodePort"], taken["LoadBalancer"]} <= found
    finally:
        api.delete_namespace(namespace)


def test_helm_installs_upgrades_and_uninstalls_a_tiny_chart(cluster, helm_executable):
    helm = HelmService(helm_executable, timeout_seconds=120)
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    api = core_api(cluster)
    try:
        first = helm.install_or_upgrade(ReleaseSpec(name=name, chart=TINY_CHART, cluster=cluster))
        assert (first.revision, first.status, first.namespace) == (1, "deployed", name)
        assert api.read_namespaced_config_map(f"{name}-greeting", name).data == {"greeting": "hello"}

        second = helm.install_or_upgrade(
            ReleaseSpec(name=name, chart=TINY_CHART, cluster=cluster, values={"greeting": "hi"})
        )
        assert second.revision == 2
        assert api.read_namespaced_config_map(f"{name}-greeting", name).data == {"greeting": "hi"}

        helm.uninstall(name, cluster)
        names = [cm.metadata.name for cm in api.list_namespaced_config_map(name).items]
        assert f"{name}-greeting" not in names
        helm.uninstall(name, cluster)  # removing what is gone is not an error
    finally:
        api.delete_namespace(name)


def test_helm_leaves_out_its_openapi_check_only_when_told(cluster, helm_executable, caplog):
    """The real helm takes the flag the console adds (pyhelm3's own adds it letter by letter, which helm
    refuses), and installs as before: the API server validates each object itself."""
    name = f"schema-{uuid.uuid4().hex[:8]}"
    api = core_api(cluster)
    caplog.set_level(logging.INFO, logger="pyhelm3.command")
    try:
        for validation, revision in ((False, 1), (True, 2)):
            caplog.clear()
            helm = HelmService(helm_executable, timeout_seconds=60, openapi_validation=validation)
            release = helm.install_or_upgrade(ReleaseSpec(name=name, chart=TINY_CHART, cluster=cluster))
            assert (release.revision, release.status) == (revision, "deployed")
            commands = [record.message for record in caplog.records if "running command" in record.message]
            assert len(commands) == 1 and (" --disable-openapi-validation" in commands[0]) is not validation
        assert api.read_namespaced_config_map(f"{name}-greeting", name).data == {"greeting": "hello"}
    finally:
        HelmService(helm_executable, timeout_seconds=60).uninstall(name, cluster)
        api.delete_namespace(name)


def test_helm_reports_a_missing_chart_as_not_found(cluster, helm_executable):
    helm = HelmService(helm_executable, timeout_seconds=60)
    with pytest.raises(NotFound, match="could not find the chart"):
        helm.install_or_upgrade(ReleaseSpec(name="no-chart", chart="/nonexistent/chart", cluster=cluster))
