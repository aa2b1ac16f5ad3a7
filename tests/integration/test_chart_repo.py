"""The local chart repository publishes the application chart, and the real helm installs it from there."""

import uuid
from decimal import Decimal

import pytest
import yaml
from django.core.cache import cache
from kubernetes import client, config

from devstack import config as devstack_config
from platforms.services import charts
from platforms.services.charts import ChartRepository, app_versions
from platforms.services.helm import HelmService
from platforms.services.types import ClusterAccess, ReleaseSpec
from platforms.values import ValuesInput, build_values
from tests.stack_fixtures import free_node_port

pytestmark = pytest.mark.integration

CHART = "binderhub-platform"
ZENITH = ("zenith.stackhpc.com", "v1alpha1")


@pytest.fixture
def repo_url(devstack) -> str:
    return devstack["APP_CHART_REPO_URL"]


def test_devstack_repo_lists_releases_newest_first(repo_url):
    assert repo_url == devstack_config.CHART_REPO_URL
    repository = ChartRepository(repo_url)
    assert repository.versions(CHART) == ["0.2.0", "0.1.0"]
    assert repository.versions(CHART, include_prereleases=True) == ["0.3.0-rc.1", "0.2.0", "0.1.0"]


def test_app_versions_read_the_devstack_repo(repo_url, settings):
    settings.APP_CHART_REPO_URL = repo_url
    settings.APP_CHART_NAME = CHART
    settings.APP_VERSIONS_INCLUDE_PRERELEASES = False
    cache.clear()
    charts.get_chart_repository.cache_clear()
    try:
        assert app_versions() == ["0.2.0", "0.1.0"]
        assert app_versions(refresh=True) == ["0.2.0", "0.1.0"]
    finally:
        cache.clear()
        charts.get_chart_repository.cache_clear()


def test_helm_installs_and_upgrades_the_chart_from_the_repo(repo_url, kubeconfig_text, helm_executable):
    cluster = ClusterAccess(kubeconfig=kubeconfig_text, context="devstack")
    helm = HelmService(helm_executable, timeout_seconds=120)
    api_client = config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text))
    api = client.CoreV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    name = f"chart-repo-{uuid.uuid4().hex[:8]}"
    values = build_values(
        ValuesInput(
            name=name,
            servers_per_user=3,
            notebook_cpus=Decimal("1"),
            notebook_ram_gb=2,
            notebook_storage_gb=10,
            registry_storage_gb=10,
            registry_node_port=free_node_port(kubeconfig_text),
        )
    )

    def spec(version: str) -> ReleaseSpec:
        return ReleaseSpec(name=name, chart=CHART, repo=repo_url, version=version, cluster=cluster, values=values)

    def reservation_labels() -> dict:
        return custom.get_namespaced_custom_object(*ZENITH, name, "reservations", "binderhub")["metadata"]["labels"]

    try:
        first = helm.install_or_upgrade(spec("0.1.0"))
        assert (first.revision, first.status, first.chart_version) == (1, "deployed", "0.1.0")
        assert reservation_labels() == {
            "app.kubernetes.io/managed-by": "Helm",  # Helm sets it on everything it installs
            "app.kubernetes.io/part-of": "binderadmin",
            "binderadmin.io/platform": name,
            "binderadmin.io/service": "binderhub",
            "helm.sh/chart": "binderhub-platform-0.1.0",
        }

        second = helm.install_or_upgrade(spec("0.2.0"))
        assert (second.revision, second.chart_version) == (2, "0.2.0")
        assert reservation_labels()["helm.sh/chart"] == "binderhub-platform-0.2.0"

        helm.uninstall(name, cluster)
        assert custom.list_namespaced_custom_object(*ZENITH, name, "reservations")["items"] == []
        assert "hub" not in [secret.metadata.name for secret in api.list_namespaced_secret(name).items]
    finally:
        try:
            helm.uninstall(name, cluster)
        finally:
            api.delete_namespace(name)
