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
from platforms.services.helm import HISTORY_MAX


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
    """The kind of the last operation; an install once one has succeeded is an upgrade now, and so is a
    rollback that succeeded (its options are the platform's since: an upgrade deploys them again)."""
    last = platform.operations.first()
    kind = last.kind if last else Operation.Kind.INSTALL
    if kind == Operation.Kind.INSTALL and platform.operations.filter(state=Operation.State.SUCCEEDED).exists():
        return Operation.Kind.UPGRADE
    if kind == Operation.Kind.ROLLBACK and last.state == Operation.State.SUCCEEDED:
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
        if kind == Operation.Kind.ROLLBACK:
            # The same rollback again: to the same revision, restoring the same options.
            failed = platform.operations.first()
            revision = failed.rollback_revision
            operation = request_rollback(platform, revision, failed.options, actor)
            AuditEvent.record(actor, "platform.retry", platform.name, f"rollback to revision {revision}")
        else:
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


class RollbackRefused(Exception):
    """The chosen revision cannot be rolled back to; the message says why."""


# The operations that deploy a Helm revision of the release, which a rollback can return to.
REVISION_KINDS = (Operation.Kind.INSTALL, Operation.Kind.UPGRADE, Operation.Kind.ROLLBACK)


def revisions(platform: Platform) -> list[Operation]:
    """The succeeded operations whose Helm revisions may still be kept, newest first: the first is the
    revision deployed now.

    Only those Helm can still have (it keeps HISTORY_MAX revisions of a release), and only since the
    release was last installed: a release removed and installed again numbers its revisions from 1
    anew, so an older operation's revision number names another revision now.
    """
    succeeded = platform.operations.filter(
        kind__in=REVISION_KINDS, state=Operation.State.SUCCEEDED, helm_revision__isnull=False
    ).order_by("-requested_at", "-id")
    kept: list[Operation] = []
    for operation in succeeded[:HISTORY_MAX]:
        if kept and (
            operation.helm_revision >= kept[-1].helm_revision
            or operation.helm_revision <= kept[0].helm_revision - HISTORY_MAX
        ):
            break
        kept.append(operation)
    return kept


def rollback_refusal(platform: Platform, target: Operation) -> str:
    """Why the platform cannot be rolled back to the revision `target` deployed ("" when it can)."""
    if target.platform_id != platform.pk:
        return f"That operation is not one of {platform.name}'s."
    if target.kind not in REVISION_KINDS or target.state != Operation.State.SUCCEEDED or not target.helm_revision:
        return "Only a revision that an install, upgrade or rollback deployed can be rolled back to."
    if not set(Platform.OPTION_FIELDS) <= set(target.options):
        return (
            f"Revision {target.helm_revision} was deployed before the console recorded each revision's options, "
            "so they could not be restored; change the platform's options instead."
        )
    last = platform.operations.first()
    if last.kind == Operation.Kind.UNINSTALL:
        return f"{platform.name} is being removed: retry its removal, as a rollback cannot stop it."
    kept = revisions(platform)
    if target.pk == kept[0].pk:
        return f"Revision {target.helm_revision} is the one deployed now."
    if target not in kept:
        return (
            f"Revision {target.helm_revision} is gone: Helm keeps the last {HISTORY_MAX} revisions of a release, "
            "and none from before it was last installed."
        )
    now, then = kept[0].options["registry_storage_gb"], target.options["registry_storage_gb"]
    if then < now:
        return (
            f"Revision {target.helm_revision} had a {then} GB container registry, and its volume is {now} GB "
            "now: a volume never shrinks. Roll back to a revision with a registry at least that large, or "
            "change the other options instead."
        )
    return ""


def rollback(platform: Platform, target: Operation, actor: AbstractBaseUser) -> Operation:
    """Request the rollback of the release to the revision `target` deployed, restoring its options.

    Raises RollbackRefused with the reason when that revision cannot be rolled back to (see
    rollback_refusal), PlatformBusy while another operation is queued or running.
    """
    with transaction.atomic():
        # Under the platform's lock, so no operation finishes between the rules and the request.
        locked = Platform.objects.select_for_update().get(pk=platform.pk)
        refusal = rollback_refusal(locked, target)
        if refusal:
            raise RollbackRefused(refusal)
        operation = request_rollback(platform, target.helm_revision, target.options, actor)
        AuditEvent.record(
            actor, "platform.rollback", platform.name, f"to revision {target.helm_revision}: {options_words(target)}"
        )
    return operation


def request_rollback(platform: Platform, revision: int, options: dict, actor: AbstractBaseUser) -> Operation:
    """Record and enqueue a rollback to `revision`; it records the options that revision deploys, not the
    platform's of the moment, so that it can be rolled back to in its turn."""
    operation = tasks.request_and_enqueue(platform, Operation.Kind.ROLLBACK, actor, rollback_revision=revision)
    operation.options = options
    operation.save(update_fields=["options"])
    return operation


def options_words(operation: Operation) -> str:
    """ "version 0.1.0, 3 servers per user, 1 CPUs, 2 GB RAM, 10 GB storage, 10 GB registry": for the audit log."""
    options = operation.options
    return (
        f"version {options['app_version']}, {options['servers_per_user']} servers per user, "
        f"{options['notebook_cpus']} CPUs, {options['notebook_ram_gb']} GB RAM, "
        f"{options['notebook_storage_gb']} GB storage, {options['registry_storage_gb']} GB registry"
    )
