"""The scheduled reconcile pass: recovers lost operations and checks every cluster with two requests at most.

A pass costs the same cluster calls at 10 platforms as at 1,000: per cluster one listing of Helm's
release records and one of the services' Reservations (or Ingresses), asked of all clusters at once,
each within its own time limit; the rest is decided here, in Python, platform by platform. Passes never
overlap: a pass holds a lease row in the database (platforms.models.Lease), which every worker process
on every host sees, and a pass that finds it held leaves at once.
"""

import logging
import os
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from platforms import deploy
from platforms.models import Cluster, Lease, Operation, Platform
from platforms.services import kube
from platforms.services.errors import ServiceError
from platforms.services.types import ReleaseInfo, ServiceLinkInfo

logger = logging.getLogger(__name__)

PASS_LEASE = "reconcile-pass"
# A worker cluster (django-q2's sentinel, "<host>:<pid>") holds the lease "worker-cluster:<host>:<pid>"
# while it lives (platforms.tasks renews it): an expired one means the cluster is dead.
WORKER_CLUSTER_LEASE = "worker-cluster:"
WAITING = (Platform.Status.INSTALLING, Platform.Status.UPGRADING)


@dataclass
class ClusterLook:
    """What one cluster reported in a pass (None: not asked), or why it could not be asked."""

    cluster: Cluster
    deployed: list[Platform] = field(default_factory=list)
    waiting: list[Platform] = field(default_factory=list)
    releases: dict[str, ReleaseInfo] | None = None
    links: dict[str, list[ServiceLinkInfo]] | None = None
    error: str = ""


def run_pass(send: Callable[[int], None], follow_up: Callable[[Platform], None]) -> bool:
    """One pass, unless another runs: False then. `send` hands an operation to the worker again;
    `follow_up` requests the upgrade that new service links call for."""
    holder = f"{deploy.worker_id()}:{uuid.uuid4().hex[:8]}"
    if not Lease.objects.take(PASS_LEASE, holder, settings.RECONCILE_PASS_MAX_SECONDS):
        current = Lease.objects.filter(name=PASS_LEASE).first()
        logger.info("reconcile pass skipped: the pass of %s runs until %s", current.holder, current.expires_at)
        return False
    try:
        for operation_id, why in recover_operations():
            logger.warning("operation=%s %s; sending it to the worker again", operation_id, why)
            send(operation_id)
        for look in look_at_clusters():
            settle(look, follow_up)
    finally:
        Lease.objects.give_back(PASS_LEASE, holder)
    return True


# --- Operations a dead worker, a lost task or a retry left queued or running ----------------------


def recover_operations() -> list[tuple[int, str]]:
    """Operations to send to the worker again, each with what happened to it, in words.

    - running, but its worker process on this host is gone (or it ran past the task timeout):
      back to queued, as it did start;
    - queued, and the worker cluster that took its task from the queue died before starting it;
    - queued, and no worker took it within QUEUED_OPERATION_GRACE_SECONDS (or its automatic retry
      is that late): its task was lost before it reached a worker.
    """
    now = timezone.now()
    cluster_dead = dead_cluster_check(now)
    recovered = recover_running(now, cluster_dead) + recover_queued(now, cluster_dead)
    forget_dead_clusters(now)
    return recovered


def dead_cluster_check(now) -> Callable[[str], bool]:
    """Whether a worker cluster ("<host>:<pid>") is dead: its process is gone (on this host) or its
    lease expired (a cluster never seen is not known to be dead)."""
    leases = {
        name.removeprefix(WORKER_CLUSTER_LEASE): expires_at
        for name, expires_at in Lease.objects.filter(name__startswith=WORKER_CLUSTER_LEASE).values_list(
            "name", "expires_at"
        )
    }

    def cluster_dead(name: str) -> bool:
        host, _, pid = name.partition(":")
        if host == socket.gethostname() and not pid_alive(pid):
            return True
        return name in leases and leases[name] < now

    return cluster_dead


def recover_running(now, cluster_dead: Callable[[str], bool]) -> list[tuple[int, str]]:
    recovered = []
    stale_after = timezone.timedelta(seconds=settings.Q_CLUSTER["timeout"] + 60)
    for operation in Operation.objects.filter(state=Operation.State.RUNNING):
        host, _, pid = operation.worker.partition(":")
        # Not the worker cluster's lease: a worker may outlive its cluster, or miss a renewal, and
        # a second helm on a release being changed would undo the first one's work.
        if host == socket.gethostname() and not pid_alive(pid):
            why = f"was left running by worker {operation.worker}, which died"
        elif operation.started_at and now - operation.started_at > stale_after:
            why = f"has run longer than the task timeout on worker {operation.worker}"
        else:
            continue
        running = Operation.objects.filter(pk=operation.pk, state=Operation.State.RUNNING, worker=operation.worker)
        if running.update(state=Operation.State.QUEUED, worker="", taken_by="", started_at=None, retry_at=now):
            recovered.append((operation.pk, why))
    return recovered


def recover_queued(now, cluster_dead: Callable[[str], bool]) -> list[tuple[int, str]]:
    recovered = []
    grace = timezone.timedelta(seconds=settings.QUEUED_OPERATION_GRACE_SECONDS)
    for operation in Operation.objects.filter(state=Operation.State.QUEUED):
        due = operation.retry_at or operation.requested_at
        if operation.taken_by and cluster_dead(operation.taken_by):
            why = f"was taken by worker cluster {operation.taken_by}, which stopped before starting it"
        elif not operation.taken_by and now - due > grace:
            why = f"waited {int((now - due).total_seconds())} s without a worker taking it"
        else:
            continue
        queued = Operation.objects.filter(pk=operation.pk, state=Operation.State.QUEUED, taken_by=operation.taken_by)
        # Sent again now: the grace starts afresh, so a pass does not send it again and again.
        if queued.update(taken_by="", retry_at=now):
            recovered.append((operation.pk, why))
    return recovered


def forget_dead_clusters(now) -> None:
    """Drop the leases of worker clusters dead for a day (no operation names them by then)."""
    Lease.objects.filter(
        name__startswith=WORKER_CLUSTER_LEASE, expires_at__lt=now - timezone.timedelta(days=1)
    ).delete()


def pid_alive(pid: str) -> bool:
    """True if the process runs; a killed worker may linger as a zombie, which counts as dead."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


# --- Clusters: a bounded number of calls each, all at once ------------------------------------------


def look_at_clusters() -> list[ClusterLook]:
    """Ask every cluster with platforms to check for its releases and/or service links, in parallel.

    A cluster that does not answer within CLUSTER_CHECK_TIMEOUT_SECONDS (twice, for two requests)
    is reported as such and does not hold up the others.
    """
    quiet = Platform.objects.exclude(operations__state__in=Operation.ACTIVE_STATES).select_related("cluster")
    looks: dict[int, ClusterLook] = {}
    for platform in quiet.filter(status=Platform.Status.DEPLOYED):
        looks.setdefault(platform.cluster_id, ClusterLook(platform.cluster)).deployed.append(platform)
    for platform in quiet.filter(status__in=WAITING).prefetch_related("service_links"):
        looks.setdefault(platform.cluster_id, ClusterLook(platform.cluster)).waiting.append(platform)
    if not looks:
        return []
    # Decrypting the kubeconfigs touches nothing outside; the threads only talk to the clusters.
    jobs = [(look, look.cluster.access()) for look in looks.values()]
    limit = 2 * settings.CLUSTER_CHECK_TIMEOUT_SECONDS + 1
    pool = ThreadPoolExecutor(max_workers=min(len(jobs), settings.RECONCILE_CLUSTERS_AT_ONCE))
    futures = {pool.submit(ask_cluster, look, access): look for look, access in jobs}
    _done, late = wait(futures, timeout=limit)
    pool.shutdown(wait=False, cancel_futures=True)
    for future in late:
        futures[future].error = f"it did not answer within {limit} s"
    return list(looks.values())


def ask_cluster(look: ClusterLook, access) -> None:
    """The cluster's listings this pass needs (run in a thread: no database here)."""
    try:
        if look.deployed:
            look.releases = kube.get_kube().helm_releases(access)
        if look.waiting:
            look.links = kube.get_kube().service_links_by_namespace(access, look.cluster.exposure)
    except ServiceError as exc:
        look.error = str(exc)
    except Exception:
        logger.exception("cluster=%s could not be asked", look.cluster.name)
        look.error = "it could not be asked (the error is in the worker's log)"


def settle(look: ClusterLook, follow_up: Callable[[Platform], None]) -> None:
    """Decide each platform of the cluster from what the cluster reported."""
    if look.error:
        logger.warning(
            "cluster=%s not reconciled (%d platforms wait for the next pass): %s",
            look.cluster.name,
            len(look.deployed) + len(look.waiting),
            look.error,
        )
        return
    # One transaction a cluster, not one a write: on SQLite each commit is a flush to disk.
    with transaction.atomic():
        for platform in look.deployed:
            deploy.check_release(platform, look.releases.get(platform.name))
        for platform in look.waiting:
            if deploy.apply_links(platform, look.links.get(platform.name, [])):
                follow_up(platform)
