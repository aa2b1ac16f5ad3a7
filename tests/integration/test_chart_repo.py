"""The local chart repository publishes the application chart, and the real helm installs it from there."""

import uuid

import pytest
import yaml
from django.core.cache import cache
from kubernetes import client, config

from devstack import config as devstack_config
from platforms.services import charts
from platforms.services.charts import ChartRepository, app_versions
from platforms.services.helm import HelmService
from platforms.services.types import ClusterAccess, ReleaseSpec

pytestmark = pytest.mark.integration

CHART = "binderhub-platform"


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
    api = client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text)))
    name = f"chart-repo-{uuid.uuid4().hex[:8]}"

    def spec(version: str) -> ReleaseSpec:
        return ReleaseSpec(name=name, chart=CHART, repo=repo_url, version=version, cluster=cluster)

    try:
        first = helm.install_or_upgrade(spec("0.1.0"))
        assert (first.revision, first.status, first.chart_version) == (1, "deployed", "0.1.0")
        labels = api.read_namespaced_config_map(f"{name}-binderhub-platform", name).metadata.labels
        assert labels == {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/version": "0.1.0"}

        second = helm.install_or_upgrade(spec("0.2.0"))
        assert (second.revision, second.chart_version) == (2, "0.2.0")
        labels = api.read_namespaced_config_map(f"{name}-binderhub-platform", name).metadata.labels
        assert labels["app.kubernetes.io/version"] == "0.2.0"

        helm.uninstall(name, cluster)
        assert f"{name}-binderhub-platform" not in [
            cm.metadata.name for cm in api.list_namespaced_config_map(name).items
        ]
    finally:
        api.delete_namespace(name)
