"""Background work: the only module that talks to django-q2. Views enqueue here; the worker runs here."""

import logging
import os
import socket
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import cache
from django.db import DatabaseError, transaction
from django.dispatch import receiver
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.models import Schedule
from django_q.signals import post_spawn
from django_q.signing import BadSignature, SignedPackage
from django_q.tasks import async_task, schedule

from platforms import access_repair, deploy, expiry, provisioning, usage
from platforms import reconcile as reconcile_pass
from platforms.access_rules import platform_group
from platforms.models import AuditEvent, Cluster, Lease, Operation, Platform, PlatformBusy
from platforms.services import helm, kube
from platforms.services.errors import ServiceError

logger = logging.getLogger(__name__)


def enqueue_on_commit(task: str, *args, task_name: str) -> None:
    """Hand `platforms.tasks.<task>` to the worker once the current transaction commits (at once outside one).

    Every task reaches the queue through here, so none can start before the rows it reads are committed.
    """
    transaction.on_commit(lambda: async_task(f"platforms.tasks.{task}", *args, task_name=task_name))


def request_and_enqueue(
    platform: Platform, kind: str, actor, reason: str = "", rollback_revision: int | None = None
) -> Operation:
    """Record the operation (raises PlatformBusy if one is active) and hand it to the worker on commit."""
    operation = Operation.objects.request(platform, kind, actor, reason, rollback_revision)
    enqueue_operation(operation.pk)
    return operation


def enqueue_operation(operation_id: int) -> None:
    """Run the operation on a worker once it is committed (also how reconcile sends a lost one again)."""
    enqueue_on_commit("run_operation", operation_id, task_name=f"operation-{operation_id}")


def enqueue_sync_links(platform: Platform) -> bool:
    """Ask the worker to sync the platform's service links, at most every LINK_SYNC_MIN_INTERVAL."""
    if not cache.add(f"sync-links:{platform.pk}", 1, settings.LINK_SYNC_MIN_INTERVAL_SECONDS):
        return False
    queue_sync_links(platform.pk)
    return True


def queue_sync_links(platform_id: int) -> None:
    """Hand the platform's link sync to the worker on commit."""
    enqueue_on_commit("sync_links", platform_id, task_name=f"sync-links-{platform_id}")


def queue_length() -> int:
    """Tasks waiting in the broker (Redis, or the database's queue table); raises when it does not answer."""
    return get_broker().queue_size()


# --- The broker: who took which operation, and which worker clusters live ------------------------


class TakerRecording:
    """Mixed into django-q2's broker (Q_CLUSTER["broker_class"]) to tell reconcile what the queue alone cannot:

    - which worker cluster took an operation's task (dequeue runs in the cluster's pusher), as a
      task taken but not yet started lives only in that cluster's memory and dies with it;
    - that the cluster lives: its sentinel saves its status every guard cycle (set_stat), and
      renews the cluster's lease with it every WORKER_HEARTBEAT_SECONDS.
    A failure to record is logged, never raised: the task itself must go on.
    """

    next_heartbeat = 0.0

    def dequeue(self):
        tasks = super().dequeue()
        if tasks:
            record_taker(tasks, f"{socket.gethostname()}:{os.getppid()}")
        return tasks

    def set_stat(self, key: str, value: str, timeout: int) -> None:
        super().set_stat(key, value, timeout)
        if time.monotonic() >= self.next_heartbeat:
            self.next_heartbeat = time.monotonic() + settings.WORKER_HEARTBEAT_SECONDS
            renew_worker_lease(f"{socket.gethostname()}:{os.getpid()}")


class TakerRecordingORM(TakerRecording, ORM):
    """The database broker, recording takers."""


class TakerRecordingRedis(TakerRecording, Redis):
    """The Redis broker, recording takers."""


def record_taker(tasks: list, cluster: str) -> None:
    """Note on each queued operation among the tasks that this worker cluster took it."""
    ids = []
    for _ack_id, payload in tasks:
        try:
            task = SignedPackage.loads(payload)
        except (BadSignature, TypeError):
            continue  # the pusher logs and drops it
        if task.get("func") == "platforms.tasks.run_operation" and task.get("args"):
            ids.append(task["args"][0])
    try:
        Operation.objects.filter(pk__in=ids, state=Operation.State.QUEUED).update(taken_by=cluster)
    except DatabaseError:
        logger.warning("operations %s taken by %s, but that could not be recorded", ids, cluster, exc_info=True)


def renew_worker_lease(cluster: str) -> None:
    try:
        Lease.objects.take(f"{reconcile_pass.WORKER_CLUSTER_LEASE}{cluster}", cluster, settings.WORKER_LEASE_SECONDS)
    except DatabaseError:
        logger.warning("worker cluster %s could not renew its lease", cluster, exc_info=True)


REALM_TARGET = "realm groups"


def enqueue_access_repair(platform: Platform | None, actor: AbstractBaseUser | None) -> None:
    """Record the request and, on commit, have the worker re-ensure the groups (and the platform's client)."""
    target = platform_group(platform.name) if platform else REALM_TARGET
    AuditEvent.record(actor, "access.repair-requested", target)
    platform_id = platform.pk if platform else None
    actor_id = actor.pk if actor else None
    enqueue_on_commit("repair_access", platform_id, actor_id, task_name=f"repair-{target}")


# --- Task functions (run by the worker; they take primary keys and re-read rows) -------------------


def run_operation(operation_id: int) -> None:
    """Run an operation, then look for the service links it exposed (or schedule its retry)."""
    retry_at = deploy.run_operation(operation_id)
    if retry_at:
        retry = Operation.objects.get(pk=operation_id).retries
        name = f"operation-{operation_id}-retry-{retry}"
        schedule(
            "platforms.tasks.run_operation", operation_id, name=name, schedule_type=Schedule.ONCE, next_run=retry_at
        )
        return
    operation = Operation.objects.filter(pk=operation_id).first()
    if operation and operation.state == Operation.State.SUCCEEDED and operation.kind != Operation.Kind.UNINSTALL:
        # A task of its own, not this one's tail: the worker starts its next operation (often the next
        # launch) at once, and reading the cluster's links queues behind it rather than in front of it.
        queue_sync_links(operation.platform_id)


def sync_links(platform_id: int) -> None:
    """Record the platform's links; request the follow-up upgrade they call for."""
    try:
        needs_upgrade = deploy.sync_links(platform_id)
    except ServiceError as exc:
        logger.warning("platform=%s links not read: %s", platform_id, exc)
        return
    if needs_upgrade:
        request_follow_up(Platform.objects.select_related("cluster").get(pk=platform_id))


def request_follow_up(platform: Platform) -> None:
    """Request the upgrade that sets the service addresses the cluster reported (hub_url, callbacks)."""
    exposer = "Zenith" if platform.cluster.exposure == Cluster.Exposure.ZENITH else "the Ingresses"
    try:
        with transaction.atomic():
            request_and_enqueue(
                platform, Operation.Kind.UPGRADE, actor=None, reason=f"Set the service addresses {exposer} reported"
            )
    except PlatformBusy:
        return  # someone asked for a change meanwhile; it sets the addresses too
    logger.info("platform=%s follow-up upgrade requested for new service links", platform.name)


def reconcile() -> None:
    """Converge what a dead worker or a changed cluster left behind (scheduled every minute)."""
    if reconcile_pass.run_pass(send=enqueue_operation, follow_up=request_follow_up):
        repair_lost_access()


def repair_access(platform_id: int | None, actor_id: int | None) -> None:
    """Re-ensure the realm's groups and, for a platform, its groups and OIDC client; audit the outcome."""
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    platform = None
    if platform_id is not None:
        platform = Platform.objects.select_related("cluster").filter(pk=platform_id).first()
        if platform is None or platform.status == Platform.Status.UNINSTALLING:
            # Being removed (or gone): re-creating its groups now would leave them behind.
            logger.info("platform=%s access not repaired: it is being removed", platform_id)
            return
    target = platform_group(platform.name) if platform else REALM_TARGET
    try:
        notes = [provisioning.ensure_realm_groups()]
        if platform:
            notes.append(provisioning.ensure_platform_access(deploy.values_input(platform)))
    except ServiceError as exc:
        AuditEvent.record(actor, "access.repair-failed", target, str(exc))
        return
    except Exception:
        logger.exception("access repair of %s failed unexpectedly", target)
        AuditEvent.record(actor, "access.repair-failed", target, deploy.GENERIC_FAILURE)
        raise
    AuditEvent.record(actor, "access.repair", target, " ".join(notes))


def repair_lost_access() -> None:
    """Re-create the groups and clients Keycloak lost (a restored realm, a restart), at most every few minutes."""
    access_repair.repair_if_due(REALM_TARGET)


@receiver(post_spawn)
def prepare_worker(sender, proc_name: str, **kwargs) -> None:
    """As each worker process starts, load what its first operation would otherwise wait for."""
    kube.load_api_modules()
    try:
        helm.get_helm().prepare()
    except Exception:  # noqa: BLE001 - the first operation meets the same failure and reports it
        logger.warning("%s could not prepare helm", proc_name, exc_info=True)
    logger.info("%s is ready for operations", proc_name)


def refresh_usage() -> None:
    """Read the usage of the platforms' hubs whose reading is due (scheduled every minute)."""
    stored = usage.refresh()
    logger.info("usage of %s platforms read", stored)


def expire_platforms() -> None:
    """Request the uninstall of the platforms past their expiry (scheduled every minute)."""
    expiry.run_pass(request=request_and_enqueue)
