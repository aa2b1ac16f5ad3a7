"""The four things a person asks of a platform: launch, change, retry and delete.

Each one, in one transaction: locks the platform and records its operation (Operation.objects.request,
which raises PlatformBusy while another one is queued or running), writes the audit event, and hands
the operation to the worker once the transaction commits (platforms.tasks.request_and_enqueue).
Views check the form and say what happened; they never repeat these steps.
"""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from platforms import tasks
from platforms.models import AuditEvent, Operation, Platform


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
        AuditEvent.record(actor, "platform.launch", platform.name, f"version {platform.app_version}")
    return operation


def change(platform: Platform, actor: AbstractBaseUser) -> Operation:
    """Save a platform's new version and options (from the edit form) and request the upgrade.

    Raises PlatformBusy, and then saves nothing, while another operation is queued or running.
    """
    with transaction.atomic():
        platform.updated_by = actor
        platform.save()
        operation = tasks.request_and_enqueue(platform, Operation.Kind.UPGRADE, actor)
        AuditEvent.record(actor, "platform.change", platform.name, f"version {platform.app_version}")
    return operation


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
