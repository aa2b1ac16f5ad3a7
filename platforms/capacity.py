"""What a cluster can hold: the capacity read at its last check, and the launch form's checks against it."""

from dataclasses import dataclass
from decimal import Decimal

from platforms.services import kube
from platforms.services.errors import ServiceError
from platforms.services.types import ClusterAccess, ClusterCapacity, NodeCapacity
from platforms.values import CPU_GUARANTEE_FRACTION, MEMORY_GUARANTEE_FRACTION


def read(access: ClusterAccess) -> tuple[dict | None, str]:
    """The cluster's capacity as stored, and why it could not be read ("" when it was).

    A kubeconfig that may not list nodes or pods still makes a usable cluster: the capacity is then
    unknown and the forms check nothing against it.
    """
    try:
        return to_json(kube.get_kube().capacity(access)), ""
    except ServiceError as exc:
        return None, f"Capacity not read: {exc}"


def to_json(capacity: ClusterCapacity) -> dict:
    """The capacity as the Cluster row stores it."""
    return {
        "nodes": [[node.name, node.cpus, node.memory_gb, node.schedulable] for node in capacity.nodes],
        "storage_classes": list(capacity.storage_classes),
        "default_storage_class": capacity.default_storage_class,
        "requested_cpus": capacity.requested_cpus,
        "requested_memory_gb": capacity.requested_memory_gb,
    }


def from_json(stored: dict | None) -> ClusterCapacity | None:
    """The stored capacity, or None when it was never read (or was stored by an older console)."""
    if not stored:
        return None
    try:
        return ClusterCapacity(
            nodes=tuple(NodeCapacity(str(n), float(c), float(m), bool(s)) for n, c, m, s in stored["nodes"]),
            storage_classes=tuple(str(name) for name in stored["storage_classes"]),
            default_storage_class=str(stored["default_storage_class"]),
            requested_cpus=float(stored["requested_cpus"]),
            requested_memory_gb=float(stored["requested_memory_gb"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class CapacityTotals:
    """The sums the pages show: what the schedulable nodes have, and what the cluster's pods request."""

    nodes: int
    cpus: float
    memory_gb: float
    largest_cpus: float
    largest_memory_gb: float
    requested_cpus: float
    requested_memory_gb: float


def totals(capacity: ClusterCapacity) -> CapacityTotals:
    usable = [node for node in capacity.nodes if node.schedulable]
    return CapacityTotals(
        nodes=len(usable),
        cpus=round(sum(node.cpus for node in usable), 2),
        memory_gb=round(sum(node.memory_gb for node in usable), 1),
        largest_cpus=max((node.cpus for node in usable), default=0.0),
        largest_memory_gb=max((node.memory_gb for node in usable), default=0.0),
        requested_cpus=capacity.requested_cpus,
        requested_memory_gb=capacity.requested_memory_gb,
    )


def notebook_refusal(capacity: ClusterCapacity | None, cpus: Decimal | float, ram_gb: int, cluster: str) -> str:
    """Why no node of the cluster can ever give a notebook this size ("" when one can, or it is unknown).

    A notebook may use up to its CPUs and RAM; a node smaller than that can start it (it reserves
    only a fraction) but can never give it what the form promised, so that is refused too.
    """
    if capacity is None:
        return ""
    usable = [node for node in capacity.nodes if node.schedulable]
    # No node at all is no proof: an autoscaling cluster adds nodes when pods ask (overcommit_warning says so).
    if not usable or any(node.cpus >= float(cpus) and node.memory_gb >= ram_gb for node in usable):
        return ""
    largest = max(usable, key=lambda node: (node.cpus, node.memory_gb))
    return (
        f"No node of cluster {cluster} can hold a notebook of {cpus:g} CPUs and {ram_gb} GB RAM: its "
        f"largest has {largest.cpus:g} CPUs and {largest.memory_gb:g} GB allocatable. Ask for less, or add a node."
    )


def overcommit_warning(capacity: ClusterCapacity | None, cpus: Decimal | float, ram_gb: int, cluster: str) -> str:
    """A warning when the cluster's pods, with one more notebook, already request more than it has."""
    if capacity is None:
        return ""
    summed = totals(capacity)
    if not summed.nodes:
        return (
            f"Cluster {cluster} had no node that accepts pods at its last check: notebooks wait until one "
            "joins (an autoscaling cluster adds one when they ask). Check the cluster again to read it anew."
        )
    cpu_after = summed.requested_cpus + float(cpus) * float(CPU_GUARANTEE_FRACTION)
    memory_after = summed.requested_memory_gb + ram_gb * float(MEMORY_GUARANTEE_FRACTION)
    short = []
    if cpu_after > summed.cpus:
        short.append(f"{summed.requested_cpus:g} of {summed.cpus:g} CPUs")
    if memory_after > summed.memory_gb:
        short.append(f"{summed.requested_memory_gb:g} of {summed.memory_gb:g} GB RAM")
    if not short:
        return ""
    return (
        f"Cluster {cluster} is full: its pods already request {' and '.join(short)}, so new notebooks may wait "
        "for room. The launch goes ahead; add nodes or ask for less to avoid the wait."
    )
