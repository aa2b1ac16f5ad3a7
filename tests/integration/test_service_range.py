"""The local stack's Service IP range holds more than the 254 Services a /24 allows (1,000 platforms need ~5,000)."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from kubernetes import client, config

from devstack import service_range

pytestmark = pytest.mark.integration


def test_the_stack_gives_addresses_to_more_services_than_a_slash_24_holds(devstack, kubeconfig_text):
    api = config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text))
    assert service_range.ensure_wide() is False  # `up` added it already
    cidrs = {item.metadata.name: item.spec.cidrs for item in client.NetworkingV1Api(api).list_service_cidr().items}
    assert cidrs[service_range.NAME] == [service_range.WIDE_RANGE]
    core = client.CoreV1Api(api)
    namespace = f"wide-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})

    def make(index: int) -> str:
        body = {"metadata": {"name": f"s{index}"}, "spec": {"ports": [{"port": 80}]}}
        return core.create_namespaced_service(namespace, body).spec.cluster_ip

    try:
        with ThreadPoolExecutor(8) as pool:
            addresses = list(pool.map(make, range(300)))
    finally:
        core.delete_namespace(namespace)
    assert len(set(addresses)) == 300
    assert any(not address.startswith("10.0.0.") for address in addresses)
