"""`python -m devstack zenith` on the real kube-apiserver: the chart's Reservations become Ready locally."""

import uuid

import pytest
import yaml
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from devstack import config as devstack_config
from devstack import zenith
from platforms.services.helm import HelmService
from platforms.services.types import ClusterAccess
from platforms.values import build_values
from tests.integration.test_app_chart import options, spec

pytestmark = pytest.mark.integration


@pytest.fixture
def installed(kubeconfig_text, helm_executable):
    """A platform installed from the local chart repository with Zenith exposure; removed afterwards."""
    name = f"zen-{uuid.uuid4().hex[:8]}"
    cluster = ClusterAccess(kubeconfig=kubeconfig_text, context="devstack")
    helm = HelmService(helm_executable, timeout_seconds=120)
    try:
        helm.install_or_upgrade(spec(cluster, name, "0.2.0", build_values(options(name))))
        yield name
    finally:
        helm.uninstall(name, cluster)
        api = kube_config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text))
        try:
            client.CoreV1Api(api).delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def test_the_charts_reservations_become_ready_once_at_the_local_addresses(installed):
    api = zenith.local_api()
    # Only this platform: other tests on the shared stack wait on Reservations of their own.
    first = zenith.expose(api, installed)
    assert sorted((item.name, item.fqdn, item.marked) for item in first) == [
        ("binderhub", f"binderhub-{installed}.{devstack_config.ZENITH_BASE_DOMAIN}", True),
        ("jupyterhub", f"jupyterhub-{installed}.{devstack_config.ZENITH_BASE_DOMAIN}", True),
    ]
    stored = api.get_namespaced_custom_object(zenith.GROUP, zenith.VERSION, installed, zenith.PLURAL, "jupyterhub")
    assert stored["status"] == {
        "phase": "Ready",
        "subdomain": f"jupyterhub-{installed}",
        "fqdn": f"jupyterhub-{installed}.zenith.localhost",
    }
    again = zenith.expose(api, installed)
    assert [item.marked for item in again] == [False, False]
    unchanged = api.get_namespaced_custom_object(zenith.GROUP, zenith.VERSION, installed, zenith.PLURAL, "jupyterhub")
    assert unchanged["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
