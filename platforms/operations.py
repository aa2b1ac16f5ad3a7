"""The four things a person asks of a platform: launch, change, retry and delete.

Each one, in one transaction: locks the platform and records its operation (Operation.objects.request,
which raises PlatformBusy while another one is queued or running), writes the audit event, and hands
the operation to the worker once the transaction commits (platforms.tasks.request_and_enqueue).
Views check the form and say what happened; they never repeat these steps.
"""

from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from platforms import expiry, tasks
from platforms.models import AuditEvent, Operation, Platform, PlatformBusy


class NothingToRetry(Exception):
    """The platform has not failed, so there is no operation to run again."""


def launch(platform: Platform, actor: AbstractBaseUser) -> Operation:
    """Save a new platform (from the launch form) and request its install.

    Raises IntegrityError when a platform of that name exists already.
    """
    with transaction.atomic():
        platform.created_by = platform.updated_by = actor
        platform.save()
        operation = tasks.request_and_enqueue(platform, Operation.Kind.INSTALL, actor)
        detail = f"version {platform.app_version}, {expiry_words(platform.expires_at)}"
        AuditEvent.record(actor, "platform.launch", platform.name, detail)
    return operation


# What a change saves: the options a Helm revision deploys, the expiry, and who changed it last.
CHANGED_FIELDS = [*Platform.OPTION_FIELDS, "expires_at", "updated_by", "updated_at"]


def change(platform: Platform, actor: AbstractBaseUser) -> Operation | None:
    """Save a platform's new version, options and expiry (from the edit form); request the upgrade.

    A new expiry alone is saved and audited with no upgrade, and None returned: it is the console's
    schedule, not the cluster's, so an upgrade would change nothing there yet make the platform busy
    for minutes. Nor is it refused while an upgrade runs; only during an uninstall, which it could no
    longer stop. A failed platform gets its upgrade all the same (a change is how a person deploys it
    again), and so does a save that changes nothing (it re-applies the options, as before).
    Raises PlatformBusy, and then saves nothing, while another operation is queued or running.
    """
    with transaction.atomic():
        # Locked: the expiry pass decides under the same lock (platforms.expiry.expire), so an extension
        # saved here is one it sees, and one it is not racing.
        stored = Platform.objects.select_for_update().get(pk=platform.pk)
        expiry_only = (
            stored.expires_at != platform.expires_at
            # Compared as values: the form's CPUs are Decimal("1"), the stored Decimal("1.00").
            and all(getattr(stored, field) == getattr(platform, field) for field in Platform.OPTION_FIELDS)
            and stored.status != Platform.Status.FAILED
        )
        if expiry_only and stored.status == Platform.Status.UNINSTALLING:
            raise PlatformBusy(f"{platform.name} is being deleted; a new expiry can no longer keep it.")
        platform.updated_by = actor
        # Only what the form changes: the status and links on this copy may be older than the worker's.
        platform.save(update_fields=CHANGED_FIELDS)
        if expiry_only:
            operation = None
            detail = f"{expiry_words(platform.expires_at)} (was {expiry_words(stored.expires_at)}); no upgrade needed"
        else:
            operation = tasks.request_and_enqueue(platform, Operation.Kind.UPGRADE, actor)
            detail = f"version {platform.app_version}, {expiry_words(platform.expires_at)}"
        AuditEvent.record(actor, "platform.change", platform.name, detail)
    return operation


def expiry_words(expires_at: datetime | None) -> str:
    """ "expires on 2027-01-31" (the day the forms show), or "no expiry", for the audit log."""
    return f"expires on {expiry.day_of(expires_at):%Y-%m-%d}" if expires_at else "no expiry"


def retry_kind(platform: Platform) -> str:
    """The kind of the last operation; an install once one has succeeded is an upgrade now."""
    last = platform.operations.first()
    kind = last.kind if last else Operation.Kind.INSTALL
    if kind == Operation.Kind.INSTALL and platform.operations.filter(state=Operation.State.SUCCEEDED).exists():
        return Operation.Kind.UPGRADE
    return kind


def retry(platform: Platform, actor: AbstractBaseUser) -> Operation:
    """Run a failed platform's last operation again (an install if it never had one).

    Raises NothingToRetry unless the platform has failed, PlatformBusy while another operation is active.
    """
    if platform.status != Platform.Status.FAILED:
        raise NothingToRetry(f"{platform.name} has not failed; there is nothing to retry.")
    kind = retry_kind(platform)
    with transaction.atomic():
        operation = tasks.request_and_enqueue(platform, kind, actor)
        AuditEvent.record(actor, "platform.retry", platform.name, kind)
    return operation


def delete(platform: Platform, actor: AbstractBaseUser) -> Operation:
    """Request the uninstall of the release, its namespace and its Keycloak groups.

    Raises PlatformBusy while another operation is queued or running.
    """
    with transaction.atomic():
        operation = tasks.request_and_enqueue(platform, Operation.Kind.UNINSTALL, actor)
        AuditEvent.record(actor, "platform.delete", platform.name)
    return operation
