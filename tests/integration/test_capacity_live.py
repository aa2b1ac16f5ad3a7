"""KubeService.capacity against the real kube-apiserver: nodes, storage classes and pods as the cluster reports them."""

import time
import uuid

import pytest
import yaml
from kubernetes import client, config

from platforms.services.errors import BadInput
from platforms.services.kube import KubeService
from platforms.services.types import ClusterAccess, NodeCapacity

pytestmark = pytest.mark.integration


@pytest.fixture
def access(kubeconfig_text) -> ClusterAccess:
    return ClusterAccess(kubeconfig=kubeconfig_text, context="devstack")


@pytest.fixture
def api_client(access):
    return config.new_client_from_config_dict(yaml.safe_load(access.kubeconfig))


@pytest.fixture
def objects(api_client):
    """Two Node objects (one tainted), a StorageClass marked default, a pending pod with requests; removed after.

    No kubelet stands behind these nodes: the API server holds whatever status it is sent, as it would
    hold a real kubelet's report, which is exactly what the console reads.
    """
    core, storage = client.CoreV1Api(api_client), client.StorageV1Api(api_client)
    suffix = uuid.uuid4().hex[:8]
    names = {"node": f"cap-{suffix}", "tainted": f"cap-t-{suffix}", "class": f"cap-{suffix}", "ns": f"cap-{suffix}"}
    taint = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    for key, cpu, memory, taints in (("node", "6", "24Gi", None), ("tainted", "96", "768Gi", taint)):
        core.create_node({"metadata": {"name": names[key]}, "spec": {"taints": taints or []}})
        status = {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Test", "message": "test"}],
        }
        core.patch_node_status(names[key], {"status": status})
        wait_for_controller_taints(core, names[key])
    storage.create_storage_class(
        {
            "metadata": {
                "name": names["class"],
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "example.org/none",
        }
    )
    core.create_namespace({"metadata": {"name": names["ns"]}})
    core.create_namespaced_pod(
        names["ns"],
        {
            "metadata": {"name": "waiting"},
            "spec": {
                "nodeSelector": {"nowhere": "true"},  # never scheduled, never run: only its requests matter
                "containers": [
                    {"name": "a", "image": "a", "resources": {"requests": {"cpu": "1500m", "memory": "3Gi"}}},
                    {"name": "b", "image": "b", "resources": {"requests": {"cpu": "500m"}}},
                ],
            },
        },
    )
    yield names
    core.delete_namespace(names["ns"])
    storage.delete_storage_class(names["class"])
    core.delete_node(names["node"])
    core.delete_node(names["tainted"])


def wait_for_controller_taints(core: client.CoreV1Api, name: str, timeout: float = 60) -> None:
    """Wait until the node lifecycle controller has lifted its not-ready taint from a node now Ready.

    The controller taints a node that registers without a Ready condition (as a real kubelet's node
    does too, until its first report) and lifts the taint once Ready is reported; a busy
    controller-manager takes seconds. Until then the console rightly counts the node as unschedulable.
    """
    deadline, clean_since = time.monotonic() + timeout, None
    while True:
        taints = core.read_node(name).spec.taints or []
        now = time.monotonic()
        if any(taint.key.startswith("node.kubernetes.io/") for taint in taints):
            clean_since = None
        elif clean_since is None:
            clean_since = now
        # Clean for a second: the controller may not have seen the node's first, statusless version yet.
        if clean_since is not None and now - clean_since >= 1:
            return
        assert now < deadline, f"node {name} still has the controller's taints: {taints}"
        time.sleep(0.2)


def test_capacity_reads_nodes_classes_and_requests_from_the_real_api_server(access, objects):
    found = KubeService().capacity(access)
    nodes = {node.name: node for node in found.nodes}
    assert nodes[objects["node"]] == NodeCapacity(objects["node"], 6.0, 25.77, True)
    assert nodes[objects["tainted"]].schedulable is False
    assert objects["class"] in found.storage_classes
    # Pods of other tests may be waiting too: this one's 2 CPUs and 3 GiB are at least in the sum.
    assert found.requested_cpus >= 2.0 and found.requested_memory_gb >= 3.2


def test_a_kubeconfig_that_may_not_list_nodes_is_refused_clearly(access, api_client):
    """A token bound to no role may not list nodes: the console says so instead of guessing."""
    core = client.CoreV1Api(api_client)
    name = f"cap-ro-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    try:
        core.create_namespaced_service_account(name, {"metadata": {"name": "reader"}})
        token = core.create_namespaced_service_account_token(
            "reader", name, {"spec": {"expirationSeconds": 600}}
        ).status.token
        document = yaml.safe_load(access.kubeconfig)
        document["users"][0]["user"] = {"token": token}
        with pytest.raises(BadInput, match="HTTP 403"):
            KubeService().capacity(ClusterAccess(kubeconfig=yaml.safe_dump(document), context="devstack"))
    finally:
        core.delete_namespace(name)
