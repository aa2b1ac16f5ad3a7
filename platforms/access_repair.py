"""The scheduled check that Keycloak still has the platforms' groups and clients, repairing what it lost.

Keycloak can lose them without the console doing anything: a realm restored from an older backup,
a development Keycloak restarted with its realm in memory. Run by the worker (from reconcile) only.
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

from platforms import deploy, provisioning
from platforms.access_rules import platform_group
from platforms.models import AuditEvent, Operation, Platform
from platforms.services.errors import ServiceError, Unavailable

logger = logging.getLogger(__name__)

REPAIRED = "access.auto-repair"
REPAIR_FAILED = "access.auto-repair-failed"


def platforms_with_access() -> QuerySet[Platform]:
    """Platforms whose groups and client should be in Keycloak now.

    Not those never installed (Pending) nor those being removed (Uninstalling), and not those with an
    operation under way: an install or upgrade ensures the groups and client itself.
    """
    return (
        Platform.objects.exclude(status__in=[Platform.Status.PENDING, Platform.Status.UNINSTALLING])
        .exclude(operations__state__in=Operation.ACTIVE_STATES)
        .select_related("cluster")
    )


def repair_if_due(realm_target: str) -> list[str]:
    """Run repair_lost_access at most every ACCESS_CHECK_INTERVAL_SECONDS; the targets repaired."""
    if not cache.add("access-check", 1, settings.ACCESS_CHECK_INTERVAL_SECONDS):
        return []
    return repair_lost_access(realm_target)


def repair_lost_access(realm_target: str) -> list[str]:
    """Re-ensure what Keycloak lost of the realm groups and the platforms' groups and clients.

    Each repair is audited under its target (the platform's group, or `realm_target` for the realm
    groups) naming what was missing. Returns the targets repaired. A Keycloak that cannot be asked
    ends the pass; the next one tries again.
    """
    try:
        lost = provisioning.lost_access(platforms_with_access().values_list("name", flat=True))
    except ServiceError as exc:
        logger.warning("keycloak access not checked: %s", exc)
        return []
    repairs: list[tuple[str, tuple[str, ...], Callable[[], str]]] = []
    if lost.realm:
        repairs.append((realm_target, lost.realm, provisioning.ensure_realm_groups))
    for name, missing in lost.platforms.items():
        repairs.append((platform_group(name), missing, lambda name=name: ensure_platform(name)))
    repaired = []
    for target, missing, ensure in repairs:
        what = f"Keycloak had lost {', '.join(missing)}."
        try:
            note = ensure()
        except ServiceError as exc:
            AuditEvent.record(None, REPAIR_FAILED, target, f"{what} {exc}")
            if isinstance(exc, Unavailable):
                break  # every further call would wait for the same Keycloak
            continue
        except Exception:
            logger.exception("access repair of %s failed unexpectedly", target)
            AuditEvent.record(None, REPAIR_FAILED, target, f"{what} {deploy.GENERIC_FAILURE}")
            raise
        if note:
            AuditEvent.record(None, REPAIRED, target, f"{what} {note}")
            repaired.append(target)
    return repaired


def ensure_platform(name: str) -> str:
    """Re-ensure one platform's groups and client, read afresh; "" when it no longer should have them."""
    platform = platforms_with_access().filter(name=name).first()
    if platform is None:
        # Removed, or an operation started, since the listing: leave its access to that operation.
        logger.info("platform=%s access not repaired: it changed during the check", name)
        return ""
    return provisioning.ensure_platform_access(deploy.values_input(platform))
