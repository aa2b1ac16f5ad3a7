"""Usage of the platforms' JupyterHubs: the worker's pass that reads and stores it (pages only show it)."""

import logging
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from platforms.models import Platform, PlatformUsage
from platforms.service_addresses import is_service_url
from platforms.services import jupyterhub
from platforms.services.errors import ServiceError

logger = logging.getLogger(__name__)

# Where deploy.ensure_secrets keeps the token of the hub's usage service (platforms.values.USAGE_SERVICE).
TOKEN_KEY = "hub_usage_token"
# A pass stops starting reads after this long, so it ends before the next scheduled one (every minute)
# begins; what it left is the oldest at the next pass.
PASS_SECONDS = 40
GENERIC_FAILURE = "the hub's answer could not be read (the console's log has the details)"


@dataclass(frozen=True)
class Reading:
    """One platform's outcome: the usage, or why there is none."""

    platform_id: int
    usage: jupyterhub.HubUsage | None = None
    error: str = ""
    # False when the pass ran out of time before asking: nothing to store.
    asked: bool = True


def due_platforms() -> list[Platform]:
    """Deployed platforms never read, or read longer than USAGE_REFRESH_SECONDS ago, oldest first."""
    stale = timezone.now() - timedelta(seconds=settings.USAGE_REFRESH_SECONDS)
    return list(
        Platform.objects.filter(status=Platform.Status.DEPLOYED)
        .filter(Q(usage__isnull=True) | Q(usage__checked_at__lt=stale))
        .order_by(F("usage__checked_at").asc(nulls_first=True), "name")
        .prefetch_related("service_links")
    )


def hub_address(platform: Platform) -> tuple[str, str] | str:
    """(hub URL, token) to read the platform's usage with, or why it cannot be read yet."""
    url = platform.ready_links().get("jupyterhub", "")
    if not is_service_url(url):
        return "no JupyterHub address yet"
    token = platform.secrets.get(TOKEN_KEY, "")
    if not token:
        return "the hub has no usage token yet; the next upgrade gives it one"
    return url, token


def read_one(reader: jupyterhub.HubUsageReader, platform_id: int, url: str, token: str, deadline: float) -> Reading:
    """Ask one hub (in a pool thread: no database here). None of its failures escapes."""
    if time.monotonic() > deadline:
        return Reading(platform_id, asked=False)
    try:
        return Reading(platform_id, usage=reader.read(url, token))
    except ServiceError as exc:
        return Reading(platform_id, error=str(exc))
    except Exception:
        logger.exception("platform=%s usage read failed unexpectedly", platform_id)
        return Reading(platform_id, error=GENERIC_FAILURE)


def record(reading: Reading) -> None:
    """Store a reading; a failed one keeps the last numbers (the pages say how old they are)."""
    now = timezone.now()
    if reading.usage is None:
        fields = {"checked_at": now, "error": reading.error[:300]}
    else:
        usage = reading.usage
        fields = {"checked_at": now, "error": "", "read_at": now, "active_users": usage.active_users}
        fields["servers"] = usage.servers
    PlatformUsage.objects.update_or_create(platform_id=reading.platform_id, defaults=fields)


def refresh() -> int:
    """Read the usage of every due platform, USAGE_HUBS_AT_ONCE hubs at a time; returns how many were stored."""
    deadline = time.monotonic() + PASS_SECONDS
    reader = jupyterhub.get_hub_reader()
    stored = 0
    with ThreadPoolExecutor(max_workers=settings.USAGE_HUBS_AT_ONCE) as pool:
        futures = []
        for platform in due_platforms():
            address = hub_address(platform)
            if isinstance(address, str):
                record(Reading(platform.pk, error=address))
                stored += 1
                continue
            futures.append(pool.submit(read_one, reader, platform.pk, *address, deadline))
        for future in as_completed(futures):
            reading = future.result()
            if reading.asked:
                record(reading)
                stored += 1
    return stored
