"""Background work: the only module that talks to django-q2. Views enqueue here; the worker runs here."""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django_q.tasks import async_task

from platforms import deploy
from platforms.models import Operation, Platform
from platforms.services.errors import ServiceError

logger = logging.getLogger(__name__)


def request_and_enqueue(platform: Platform, kind: str, actor) -> Operation:
    """Record the operation (raises PlatformBusy if one is active) and hand it to the worker on commit."""
    operation = Operation.objects.request(platform, kind, actor)
    transaction.on_commit(lambda: enqueue_operation(operation.pk))
    return operation


def enqueue_operation(operation_id: int) -> None:
    async_task("platforms.tasks.run_operation", operation_id, task_name=f"operation-{operation_id}")


def enqueue_link_sync(platform: Platform) -> bool:
    """Ask the worker to look at the platform's service links, at most every LINK_SYNC_MIN_INTERVAL."""
    if not cache.add(f"link-sync:{platform.pk}", 1, settings.LINK_SYNC_MIN_INTERVAL_SECONDS):
        return False
    async_task("platforms.tasks.sync_links", platform.pk, task_name=f"sync-links-{platform.pk}")
    return True


# --- Task functions (run by the worker; they take primary keys and re-read rows) -------------------


def run_operation(operation_id: int) -> None:
    """Run an operation, then look for the service links it exposed."""
    deploy.run_operation(operation_id)
    operation = Operation.objects.filter(pk=operation_id).first()
    if operation and operation.state == Operation.State.SUCCEEDED and operation.kind != Operation.Kind.UNINSTALL:
        sync_links(operation.platform_id)


def sync_links(platform_id: int) -> None:
    """Record the platform's links; request the follow-up upgrade they call for."""
    try:
        needs_upgrade = deploy.sync_service_links(platform_id)
    except ServiceError as exc:
        logger.warning("platform=%s links not read: %s", platform_id, exc)
        return
    if needs_upgrade:
        platform = Platform.objects.get(pk=platform_id)
        with transaction.atomic():
            request_and_enqueue(platform, Operation.Kind.UPGRADE, actor=None)
        logger.info("platform=%s follow-up upgrade requested for new service links", platform.name)


def reconcile() -> None:
    """Converge what a dead worker or a changed cluster left behind (scheduled every minute)."""
    for operation_id in deploy.orphaned_operations():
        logger.warning("operation=%s was left by a dead worker; running it again", operation_id)
        enqueue_operation(operation_id)
    for platform_id in deploy.platforms_waiting_for_links():
        sync_links(platform_id)
    deploy.check_releases()
