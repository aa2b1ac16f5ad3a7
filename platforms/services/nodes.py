"""Reads a cluster's capacity from its listings of nodes, storage classes and pods, trusting none of it."""

import logging
import re
from decimal import Decimal, InvalidOperation

from kubernetes.utils import parse_quantity

from platforms.services.types import ClusterCapacity, NodeCapacity

logger = logging.getLogger(__name__)

GB = Decimal(10**9)
# Bounds on what a cluster may claim (beyond them it is lying or broken): the largest machines sold
# have a few hundred cores and a few TB; these leave room and still keep sums meaningful.
MAX_NODE_CPUS = Decimal(10_000)
MAX_NODE_MEMORY = Decimal(10**15)  # 1 PB
MAX_POD_REQUEST = Decimal(10**15)
MAX_NODES = 5_000
MAX_STORAGE_CLASSES = 200
OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z")
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
# Taints that keep a pod without a matching toleration (every notebook) off a node.
KEEPS_PODS_OFF = ("NoSchedule", "NoExecute")


def quantity(value: object, bound: Decimal) -> Decimal:
    """A Kubernetes quantity ("500m", "16Gi"), or 0 when it does not parse or lies outside 0..bound."""
    if not isinstance(value, str | int) or (isinstance(value, str) and len(value) > 40):
        return Decimal(0)
    try:
        parsed = parse_quantity(value)
    except (ValueError, InvalidOperation, TypeError):
        return Decimal(0)
    return parsed if 0 <= parsed <= bound else Decimal(0)


def object_name(value: object) -> str:
    return value if isinstance(value, str) and OBJECT_NAME.match(value) else ""


def node_capacity(item: dict) -> NodeCapacity | None:
    """One node's allocatable resources and whether notebooks can land on it; None if it is unnamed."""
    name = object_name(item.get("metadata", {}).get("name"))
    if not name:
        return None
    spec = item.get("spec") if isinstance(item.get("spec"), dict) else {}
    status = item.get("status") if isinstance(item.get("status"), dict) else {}
    allocatable = status.get("allocatable") if isinstance(status.get("allocatable"), dict) else {}
    conditions = status.get("conditions") if isinstance(status.get("conditions"), list) else []
    ready = any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    taints = spec.get("taints") if isinstance(spec.get("taints"), list) else []
    tainted = any(isinstance(t, dict) and t.get("effect") in KEEPS_PODS_OFF for t in taints)
    return NodeCapacity(
        name=name,
        cpus=float(quantity(allocatable.get("cpu"), MAX_NODE_CPUS)),
        memory_gb=round(float(quantity(allocatable.get("memory"), MAX_NODE_MEMORY) / GB), 2),
        schedulable=ready and not tainted and spec.get("unschedulable") is not True,
    )


def pod_requests(item: dict) -> tuple[Decimal, Decimal]:
    """The CPUs and bytes of memory a pod's containers request (init containers run before, not beside)."""
    spec = item.get("spec") if isinstance(item.get("spec"), dict) else {}
    containers = spec.get("containers") if isinstance(spec.get("containers"), list) else []
    cpus, memory = Decimal(0), Decimal(0)
    for container in containers:
        resources = container.get("resources") if isinstance(container, dict) else None
        requests = resources.get("requests") if isinstance(resources, dict) else None
        if isinstance(requests, dict):
            cpus += quantity(requests.get("cpu"), MAX_POD_REQUEST)
            memory += quantity(requests.get("memory"), MAX_POD_REQUEST)
    return cpus, memory


def capacity_from_listings(nodes: list[dict], classes: list[dict], pods: list[dict]) -> ClusterCapacity:
    """The cluster's capacity from the items of its three listings (each item a dict with metadata)."""
    found = [node for node in map(node_capacity, nodes[:MAX_NODES]) if node]
    names, default = [], ""
    for item in classes[:MAX_STORAGE_CLASSES]:
        name = object_name(item["metadata"].get("name"))
        if not name:
            continue
        names.append(name)
        annotations = item["metadata"].get("annotations")
        if isinstance(annotations, dict) and annotations.get(DEFAULT_CLASS) == "true":
            default = name
    requested = [pod_requests(item) for item in pods]
    return ClusterCapacity(
        nodes=tuple(sorted(found, key=lambda node: node.name)),
        storage_classes=tuple(sorted(names)),
        default_storage_class=default,
        requested_cpus=round(float(sum((cpu for cpu, _ in requested), Decimal(0))), 2),
        requested_memory_gb=round(float(sum((memory for _, memory in requested), Decimal(0)) / GB), 1),
    )
