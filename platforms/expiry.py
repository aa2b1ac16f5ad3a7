"""Platform expiry: the day a person chooses, and the worker's pass that uninstalls platforms past it.

A person picks a date (the launch and change forms); the platform expires at the end of that day in
the console's TIME_ZONE, stored as the first moment of the next day. Every minute the worker's pass
(platforms.tasks.expire_platforms) finds the platforms past their expiry in one query, however many
platforms there are, and requests each one's uninstall as the console: the same operation, run by the
same worker code, as a person's Delete, audited as `platform.expire`.
"""

import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from platforms.models import AuditEvent, Operation, Platform, PlatformBusy

logger = logging.getLogger(__name__)

# The list and the page warn this close to a platform's expiry.
WARNING_DAYS = 7
# The last day a form accepts: its end must still be a datetime Python can hold in every time zone.
LAST_DAY = date.max - timedelta(days=2)


def end_of_day(day: date) -> datetime:
    """When a platform set to expire on `day` expires: the first moment of the next day, local time."""
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), timezone.get_default_timezone())


def day_of(expires_at: datetime) -> date:
    """The day whose end `expires_at` is (what the forms show): the local day of the moment just before it."""
    return (timezone.localtime(expires_at, timezone.get_default_timezone()) - timedelta(microseconds=1)).date()


def due(now: datetime) -> QuerySet:
    """Platforms whose expiry has passed and that the pass should request the uninstall of.

    Left out: those already being removed or busy with another operation (the next pass looks again
    once it has finished), and those whose uninstall was already requested since they expired: if
    it failed, a person reads why and retries; asking again every minute would only repeat the
    failure, and its audit event, forever.
    """
    active = Operation.objects.filter(platform=OuterRef("pk"), state__in=Operation.ACTIVE_STATES)
    removal_asked = Operation.objects.filter(
        platform=OuterRef("pk"), kind=Operation.Kind.UNINSTALL, requested_at__gte=OuterRef("expires_at")
    )
    return (
        Platform.objects.filter(expires_at__lte=now)
        .exclude(status=Platform.Status.UNINSTALLING)
        .exclude(Exists(active))
        .exclude(Exists(removal_asked))
        .order_by("expires_at", "pk")
    )


# Requests an operation and hands it to the worker on commit: platforms.tasks.request_and_enqueue.
Request = Callable[..., Operation]


def expire(platform: Platform, now: datetime, request: Request) -> Operation | None:
    """Request the uninstall of a platform past its expiry, as the console (no actor), and audit it.

    Decided again under the platform's row lock, in the transaction that records the operation: None
    when meanwhile a person extended or cleared the expiry, deleted the platform, or another pass
    asked first. Raises PlatformBusy while another operation is queued or running.
    """
    with transaction.atomic():
        if Platform.objects.select_for_update().filter(pk=platform.pk).values_list("pk", flat=True).first() is None:
            return None  # deleted meanwhile
        # Asked once the lock is held, so it sees what the holder before us committed (a person's new
        # expiry, another pass's request): a query that waited for the lock would judge by older rows.
        locked = due(now).filter(pk=platform.pk).first()
        if locked is None:
            return None
        day = day_of(locked.expires_at)
        operation = request(locked, Operation.Kind.UNINSTALL, None, reason=f"Expired on {day:%Y-%m-%d}")
        AuditEvent.record(None, "platform.expire", locked.name, f"expired on {day:%Y-%m-%d}; uninstall requested")
    return operation


def run_pass(request: Request, now: datetime | None = None) -> list[str]:
    """Request the uninstall of every platform due; returns the names of those requested.

    One query finds them. Safe beside another pass on another worker: each request re-checks the
    platform under its lock (expire), so a platform is asked to go once.
    """
    now = now or timezone.now()
    requested = []
    for platform in due(now).only("pk", "name", "expires_at"):
        try:
            operation = expire(platform, now, request)
        except PlatformBusy:
            # Another operation began since the query (a person's, or another pass's): the next pass looks again.
            logger.info("platform=%s expired but busy; the next pass tries again", platform.name)
            continue
        if operation:
            requested.append(platform.name)
    if requested:
        logger.info("expired platforms to uninstall: %s", ", ".join(requested))
    return requested
