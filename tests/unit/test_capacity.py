"""Reading a cluster's capacity from what it reports (untrusted), and the launch form's checks against it."""

from decimal import Decimal

import pytest

from platforms import capacity
from platforms.services.nodes import capacity_from_listings, node_capacity, pod_requests
from platforms.services.types import ClusterCapacity, NodeCapacity


def node(name="n1", cpu="4", memory="16Gi", ready="True", unschedulable=None, taints=None) -> dict:
    spec = {}
    if unschedulable is not None:
        spec["unschedulable"] = unschedulable
    if taints is not None:
        spec["taints"] = taints
    return {
        "metadata": {"name": name},
        "spec": spec,
        "status": {"allocatable": {"cpu": cpu, "memory": memory}, "conditions": [{"type": "Ready", "status": ready}]},
    }


def pod(*requests: dict) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"resources": {"requests": r}} for r in requests]}}


def test_a_node_reports_its_allocatable_resources_in_cpus_and_gb():
    assert node_capacity(node(cpu="3500m", memory="16Gi")) == NodeCapacity("n1", 3.5, 17.18, True)


@pytest.mark.parametrize(
    "changes",
    [
        {"ready": "False"},
        {"ready": "Unknown"},
        {"unschedulable": True},
        {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
        {"taints": [{"key": "x", "effect": "NoExecute"}]},
    ],
)
def test_a_node_notebooks_cannot_land_on_is_not_schedulable(changes):
    assert node_capacity(node(**changes)).schedulable is False


def test_a_preferring_taint_leaves_a_node_schedulable():
    assert node_capacity(node(taints=[{"key": "x", "effect": "PreferNoSchedule"}])).schedulable is True


@pytest.mark.parametrize(
    "cpu, memory",
    [
        ("lots", "16Gi"),  # not a quantity
        ("-4", "16Gi"),  # negative
        ("1e9", "16Gi"),  # more CPUs than any machine
        ("4", "99999999Pi"),  # more memory than any machine
        (["4"], {"a": 1}),  # not strings at all
        ("4" * 50, "16Gi"),  # absurdly long
    ],
)
def test_a_lying_node_counts_as_nothing_not_as_a_crash(cpu, memory):
    reported = node_capacity(node(cpu=cpu, memory=memory))
    assert reported.cpus in (0.0, 4.0) and reported.memory_gb in (0.0, 17.18)
    assert not (reported.cpus == 4.0 and reported.memory_gb == 17.18)


@pytest.mark.parametrize("name", ["", "UPPER", "a/b", "<script>", "x" * 300, 7, None])
def test_a_node_without_a_proper_name_is_dropped(name):
    assert node_capacity(node(name=name)) is None


def test_pod_requests_add_up_over_containers_and_ignore_garbage():
    assert pod_requests(pod({"cpu": "250m", "memory": "1Gi"}, {"cpu": "1"}, {"memory": "bad"})) == (
        Decimal("1.25"),
        Decimal(2**30),
    )
    assert pod_requests({"metadata": {}, "spec": "nonsense"}) == (0, 0)


def test_the_cluster_capacity_sums_pods_and_finds_the_default_storage_class():
    classes = [
        {"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}},
        {"metadata": {"name": "fast"}},
        {"metadata": {"name": "Bad Name"}},
    ]
    found = capacity_from_listings(
        [node("b"), node("a", cpu="8", memory="32Gi")], classes, [pod({"cpu": "2", "memory": "4Gi"})] * 3
    )
    assert [n.name for n in found.nodes] == ["a", "b"]
    assert found.storage_classes == ("fast", "standard") and found.default_storage_class == "standard"
    assert (found.requested_cpus, found.requested_memory_gb) == (6.0, 12.9)


CLUSTER = ClusterCapacity(
    nodes=(NodeCapacity("small", 4, 16, True), NodeCapacity("big", 16, 64, True), NodeCapacity("off", 64, 512, False)),
    storage_classes=("standard",),
    default_storage_class="standard",
    requested_cpus=10,
    requested_memory_gb=40,
)


def test_stored_capacity_reads_back_the_same_and_garbage_reads_as_unknown():
    assert capacity.from_json(capacity.to_json(CLUSTER)) == CLUSTER
    assert capacity.from_json(None) is None
    assert capacity.from_json({"nodes": "x"}) is None


def test_a_notebook_one_schedulable_node_holds_is_accepted():
    assert capacity.notebook_refusal(CLUSTER, Decimal(16), 64, "prod") == ""
    assert capacity.notebook_refusal(None, Decimal(1000), 1000, "prod") == ""  # never read: no opinion


def test_a_notebook_no_schedulable_node_can_hold_is_refused_naming_the_largest():
    message = capacity.notebook_refusal(CLUSTER, Decimal(32), 8, "prod")  # the cordoned node would hold it
    assert message.startswith("No node of cluster prod can hold a notebook of 32 CPUs and 8 GB RAM")
    assert "largest has 16 CPUs and 64 GB allocatable" in message


def test_cpus_and_memory_must_fit_on_the_same_node():
    lopsided = ClusterCapacity((NodeCapacity("cpu", 32, 8, True), NodeCapacity("ram", 2, 256, True)), (), "", 0, 0)
    assert capacity.notebook_refusal(lopsided, Decimal(16), 64, "prod")


def test_a_cluster_with_no_node_for_pods_is_not_a_refusal():
    """An autoscaling cluster may have no node until pods ask for one."""
    empty = ClusterCapacity((), (), "", 0, 0)
    assert capacity.notebook_refusal(empty, Decimal(64), 512, "prod") == ""
    assert "had no node that accepts pods" in capacity.overcommit_warning(empty, Decimal(1), 1, "prod")


def test_a_full_cluster_is_a_warning_not_a_refusal():
    assert capacity.overcommit_warning(CLUSTER, Decimal(2), 8, "prod") == ""
    full = ClusterCapacity(CLUSTER.nodes, (), "", requested_cpus=19.9, requested_memory_gb=79)
    warning = capacity.overcommit_warning(full, Decimal(2), 8, "prod")
    assert warning.startswith("Cluster prod is full: its pods already request 19.9 of 20 CPUs and 79 of 80 GB RAM")
