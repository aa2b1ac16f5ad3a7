"""The deploy engine: runs a platform's operations through Helm and records what happened.

Called only from platforms/tasks.py (the worker). Every function takes primary keys, re-reads
rows, and is safe to run twice: a duplicate delivery of a task finds nothing left to do.
"""

import logging
import os
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal

import bcrypt
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from platforms import provisioning
from platforms.access_rules import SERVICES, platform_group
from platforms.models import Cluster, Operation, Platform, ServiceLink
from platforms.service_addresses import CheckedLink, check_links
from platforms.services import helm, kube
from platforms.services.errors import BadInput, Conflict, NoAnswer, ServiceError
from platforms.services.types import ReleaseInfo, ReleaseSpec, ServiceLinkInfo
from platforms.values import REGISTRY_USERNAME, SERVICE_LABELS, ValuesInput, build_values, ingress_urls, known_links

logger = logging.getLogger(__name__)

GENERIC_FAILURE = "The operation failed unexpectedly; the error is in the worker's log."
STATUS_WHILE_RUNNING = {
    Operation.Kind.INSTALL: Platform.Status.INSTALLING,
    Operation.Kind.UPGRADE: Platform.Status.UPGRADING,
    Operation.Kind.UNINSTALL: Platform.Status.UNINSTALLING,
    Operation.Kind.ROLLBACK: Platform.Status.UPGRADING,
}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_cluster_id() -> str:
    """The worker cluster (django-q2's sentinel) this worker process belongs to: its parent process."""
    return f"{socket.gethostname()}:{os.getppid()}"


def run_operation(operation_id: int) -> datetime | None:
    """Run one queued operation to its end: succeeded, or failed with a message a person can act on.

    When only a service's silence stopped it (NoAnswer), it is queued again for a later retry,
    whose time this returns (None otherwise), up to OPERATION_RETRIES times.
    """
    operation = start(operation_id)
    if operation is None:
        return None
    try:
        if operation.kind == Operation.Kind.UNINSTALL:
            uninstall(operation)
        elif operation.kind == Operation.Kind.ROLLBACK:
            rollback(operation)
        else:
            install_or_upgrade(operation)
    except NoAnswer as exc:
        return retry_later(operation, str(exc))
    except ServiceError as exc:
        fail(operation, str(exc))
    except Exception:
        logger.exception("platform=%s operation=%s failed unexpectedly", operation.platform.name, operation.pk)
        fail(operation, GENERIC_FAILURE)
        raise


def start(operation_id: int) -> Operation | None:
    """Move a queued operation to running under the platform's lock; None if it is not queued."""
    with transaction.atomic():
        operation = Operation.objects.select_for_update().select_related("platform").filter(pk=operation_id).first()
        if operation is None or operation.state != Operation.State.QUEUED:
            return None
        platform = Platform.objects.select_for_update().get(pk=operation.platform_id)
        operation.state = Operation.State.RUNNING
        operation.started_at = timezone.now()
        operation.worker = worker_id()
        operation.taken_by = worker_cluster_id()
        operation.save(update_fields=["state", "started_at", "worker", "taken_by"])
        platform.status = STATUS_WHILE_RUNNING[operation.kind]
        platform.status_message = ""
        platform.save(update_fields=["status", "status_message", "updated_at"])
        operation.platform = platform
    logger.info("platform=%s operation=%s %s started", platform.name, operation.pk, operation.kind)
    return operation


def finish(operation: Operation, output: str, revision: int | None = None) -> None:
    if operation.retries:
        retried = f"Retry {operation.retries} of {settings.OPERATION_RETRIES} succeeded; before it: {operation.error}"
        output = f"{retried}\n{output}"
    operation.state = Operation.State.SUCCEEDED
    operation.finished_at = timezone.now()
    operation.output = output
    operation.error = ""
    operation.helm_revision = revision
    operation.save(update_fields=["state", "finished_at", "output", "error", "helm_revision"])
    logger.info("platform=%s operation=%s %s succeeded", operation.platform.name, operation.pk, operation.kind)


def fail(operation: Operation, message: str) -> None:
    """Record the failure on the operation and the platform (which a retry can pick up)."""
    with transaction.atomic():
        operation.state = Operation.State.FAILED
        operation.finished_at = timezone.now()
        operation.error = message
        operation.save(update_fields=["state", "finished_at", "error"])
        Platform.objects.filter(pk=operation.platform_id).update(
            status=Platform.Status.FAILED,
            status_message=f"{operation.get_kind_display()} failed: {message}",
            updated_at=timezone.now(),
        )
    logger.warning("platform=%s operation=%s failed: %s", operation.platform.name, operation.pk, message)


def retry_later(operation: Operation, message: str) -> datetime | None:
    """Queue the operation again after a backoff (30 s, 60 s, 120 s by default), saying so on the
    operation and the platform; after the last retry, fail it. Returns when the retry is due."""
    if operation.retries >= settings.OPERATION_RETRIES:
        fail(operation, f"{message} (Tried {operation.retries + 1} times.)")
        return None
    retry = operation.retries + 1
    delay = settings.OPERATION_RETRY_SECONDS * 2**operation.retries
    note = f"{message} Retry {retry} of {settings.OPERATION_RETRIES} in {delay} s."
    now = timezone.now()
    with transaction.atomic():
        Operation.objects.filter(pk=operation.pk).update(
            state=Operation.State.QUEUED,
            retries=retry,
            retry_at=now + timedelta(seconds=delay),
            error=note,
            worker="",
            taken_by="",
            started_at=None,
        )
        Platform.objects.filter(pk=operation.platform_id).update(
            status=Operation.objects.STATUS_FOR_KIND[operation.kind],
            status_message=f"{operation.get_kind_display()} did not finish: {note}",
            updated_at=now,
        )
    logger.warning("platform=%s operation=%s %s", operation.platform.name, operation.pk, note)
    return now + timedelta(seconds=delay)


def ensure_secrets(platform: Platform) -> dict[str, str]:
    """Generate the platform's secrets once; later deploys send the stored ones unchanged.

    The registry's htpasswd line is hashed once too: a fresh bcrypt salt at every deploy would
    change the registry's Secret (and restart it) on every upgrade. At bcrypt's lowest cost: the
    password is 32 random bytes, which no work factor makes any harder to guess, and a higher one
    would slow every first install and every sign-in to the registry.
    """
    stored = dict(platform.secrets)
    changed = False
    for name in ("registry_password", "oidc_client_secret", "hub_usage_token"):
        if not stored.get(name):
            stored[name] = secrets.token_urlsafe(32)
            changed = True
    if not stored.get("registry_htpasswd"):
        digest = bcrypt.hashpw(stored["registry_password"].encode(), bcrypt.gensalt(rounds=4)).decode()
        stored["registry_htpasswd"] = f"{REGISTRY_USERNAME}:{digest}"
        changed = True
    if changed:
        platform.secrets = stored
        platform.save(update_fields=["secrets_encrypted"])
    return stored


def values_input(platform: Platform) -> ValuesInput:
    cluster = platform.cluster
    stored = ensure_secrets(platform)
    return ValuesInput(
        name=platform.name,
        servers_per_user=platform.servers_per_user,
        notebook_cpus=platform.notebook_cpus,
        notebook_ram_gb=platform.notebook_ram_gb,
        notebook_storage_gb=platform.notebook_storage_gb,
        registry_storage_gb=platform.registry_storage_gb,
        exposure=cluster.exposure,
        ingress_base_domain=cluster.ingress_base_domain,
        ingress_class=cluster.ingress_class,
        ingress_tls=cluster.ingress_tls,
        registry_password=stored["registry_password"],
        registry_htpasswd=stored["registry_htpasswd"],
        oidc_client_id=provisioning.oidc_client_id(platform.name),
        oidc_client_secret=stored["oidc_client_secret"],
        oidc_issuer=settings.OIDC_OP_ISSUER,
        oidc_issuer_from_cluster=(
            f"{settings.KEYCLOAK_URL_FROM_CLUSTERS}/realms/{settings.KEYCLOAK_REALM}"
            if settings.KEYCLOAK_URL_FROM_CLUSTERS
            else ""
        ),
        admin_group=settings.ADMIN_GROUP,
        links=platform.ready_links(),
        hub_usage_token=stored["hub_usage_token"],
        registry_node_port=platform.registry_node_port,
        storage_class=cluster.storage_class,
        ingress_cluster_issuer=cluster.ingress_cluster_issuer,
    )


def ensure_registry_node_port(platform: Platform, cluster_ports: set[int]) -> int:
    """The platform's registry NodePort: chosen once, the lowest port of the range that no Service on
    the cluster uses (`cluster_ports`, as the cluster listed them) and no other platform of the console
    holds. Raises Conflict when none is left."""
    if platform.registry_node_port:
        return platform.registry_node_port
    used = set(cluster_ports)
    used |= set(
        Platform.objects.filter(cluster=platform.cluster, registry_node_port__isnull=False).values_list(
            "registry_node_port", flat=True
        )
    )
    for port in range(settings.REGISTRY_NODE_PORT_MIN, settings.REGISTRY_NODE_PORT_MAX + 1):
        if port in used:
            continue
        try:
            with transaction.atomic():
                Platform.objects.filter(pk=platform.pk).update(registry_node_port=port)
        except IntegrityError:
            continue  # another platform took it meanwhile
        platform.registry_node_port = port
        return port
    raise Conflict(
        f"No NodePort is free for the registry between {settings.REGISTRY_NODE_PORT_MIN} and "
        f"{settings.REGISTRY_NODE_PORT_MAX} on cluster {platform.cluster.name}."
    )


def install_or_upgrade(operation: Operation) -> None:
    platform = operation.platform
    # The cluster is asked first, outside the transaction that then stores the port and any new
    # secrets in one commit: each commit is a disk flush the operation waits for.
    cluster_ports = set() if platform.registry_node_port else kube.get_kube().node_ports(platform.cluster.access())
    with transaction.atomic():
        ensure_registry_node_port(platform, cluster_ports)
        spec = values_input(platform)
    release_spec = ReleaseSpec(
        name=platform.name,
        chart=settings.APP_CHART_NAME,
        repo=settings.APP_CHART_REPO_URL,
        version=platform.app_version,
        cluster=platform.cluster.access(),
        values=build_values(spec),
    )
    # Keycloak beside Helm, not in front of it: each takes about as long as the other, and neither
    # needs the other's result. Both must succeed for the operation to; a retry re-ensures both.
    # A first install's groups and client are almost always new: created without a look first.
    first_install = operation.kind == Operation.Kind.INSTALL and operation.retries == 0
    with ThreadPoolExecutor(max_workers=1) as keycloak_worker:
        access = keycloak_worker.submit(provisioning.ensure_platform_access, spec, first_install)
        release, recovered = run_helm(platform, release_spec)
        try:
            access_note = access.result()
        except ServiceError as exc:
            raise type(exc)(
                f"Helm deployed revision {release.revision}, but access in Keycloak could not be set up, so "
                f"nobody can sign in yet: {exc} Retry to set it up."
            ) from None
    output = "\n".join(
        part
        for part in (access_note, recovered, f"Helm revision {release.revision}: {release.status}.", release.notes)
        if part
    )
    with transaction.atomic():  # one commit, not two: each is a disk flush the next operation waits behind
        Platform.objects.filter(pk=platform.pk).update(deployed_links=known_links(spec))
        finish(operation, output, release.revision)


def run_helm(platform: Platform, release_spec: ReleaseSpec) -> tuple[ReleaseInfo, str]:
    """`helm upgrade --install`, and what was done first to recover an interrupted one ("" if nothing)."""
    try:
        return helm.get_helm().install_or_upgrade(release_spec), ""
    except Conflict:
        # A helm killed mid-change (a dead worker) left the release pending: clear it, try once more.
        recovered = helm.get_helm().recover_interrupted(platform.name, release_spec.cluster)
        if not recovered:
            raise
        return helm.get_helm().install_or_upgrade(release_spec), recovered
    except BadInput as exc:
        if NODE_PORT_TAKEN not in str(exc):
            raise
        # Another Service took the port between the console's look at the cluster and helm's install
        # (another console, a person): forget it, so that a retry chooses again.
        port = platform.registry_node_port
        Platform.objects.filter(pk=platform.pk, registry_node_port=port).update(registry_node_port=None)
        raise BadInput(f"{exc}\nThe registry's NodePort {port} was taken meanwhile; Retry chooses another.") from None


# What the API server answers when a Service asks for a NodePort that another Service holds.
NODE_PORT_TAKEN = "provided port is already allocated"


def rollback(operation: Operation) -> None:
    """Roll the release back to the operation's target revision, then put back in the console the
    options that revision deployed, in the same commit as the operation's success."""
    platform = operation.platform
    access = platform.cluster.access()
    revision = operation.rollback_revision
    restored = restored_options(operation.options)  # a bad record fails here, before the cluster changes
    try:
        release, recovered = helm.get_helm().rollback(platform.name, revision, access), ""
    except Conflict:
        # A helm killed mid-change (a dead worker) left the release pending: clear it, try once more.
        recovered = helm.get_helm().recover_interrupted(platform.name, access)
        if not recovered:
            raise
        release = helm.get_helm().rollback(platform.name, revision, access)
    done = f"Rolled back to revision {revision}, as Helm revision {release.revision}: {release.status}."
    output = "\n".join(part for part in (recovered, done, release.notes) if part)
    with transaction.atomic():
        # The links the older revision was given are not recorded: forgetting the deployed ones has the
        # next link sync bring today's in with a follow-up upgrade (hub_url, OAuth callbacks), as after
        # an install, should any be ready.
        Platform.objects.filter(pk=platform.pk).update(
            **restored, deployed_links={}, updated_by_id=operation.actor_id, updated_at=timezone.now()
        )
        finish(operation, output, release.revision)


def restored_options(options: dict) -> dict:
    """The platform fields a rollback puts back, from the options its target operation recorded."""
    restored = {field: options[field] for field in Platform.OPTION_FIELDS}
    restored["notebook_cpus"] = Decimal(restored["notebook_cpus"])
    return restored


def uninstall(operation: Operation) -> None:
    """Uninstall the release, delete the namespace, wait until it is gone, remove the platform's
    Keycloak client and groups, then forget the platform."""
    platform = operation.platform
    access = platform.cluster.access()
    helm.get_helm().uninstall(platform.name, access)
    phase = kube.get_kube().delete_namespace(access, platform.name)
    deadline = time.monotonic() + settings.NAMESPACE_DELETE_TIMEOUT_SECONDS
    while phase != "Gone" and time.monotonic() < deadline:
        time.sleep(1)
        phase = kube.get_kube().namespace_phase(access, platform.name)
    if phase != "Gone":
        raise StuckNamespace(
            f"The release is uninstalled, but namespace {platform.name} is still {phase} after "
            f"{settings.NAMESPACE_DELETE_TIMEOUT_SECONDS}s: something on the cluster holds a finalizer "
            f"(see `kubectl get all,pvc -n {platform.name}`). Retry to check again."
        )
    try:
        removed = provisioning.remove_platform_access(platform.name)
    except ServiceError as exc:
        raise type(exc)(
            f"The release and namespace are removed, but not the Keycloak client and groups. {exc} "
            "Retry to remove them."
        ) from None
    finish(operation, f"Release and namespace {platform.name} removed.\n{removed}")
    # The mirrored groups would otherwise show a later platform of the same name to today's members.
    path = platform_group(platform.name)
    Group.objects.filter(Q(name=path) | Q(name__startswith=f"{path}/")).delete()
    logger.info("platform=%s removed from cluster %s", platform.name, platform.cluster.name)
    platform.delete()


class StuckNamespace(ServiceError):
    """The namespace did not go away in time."""


def sync_links(platform_id: int) -> bool:
    """Read the platform's service links from the cluster and apply them (see apply_links)."""
    platform = Platform.objects.select_related("cluster").filter(pk=platform_id).first()
    if platform is None or platform.status not in (Platform.Status.INSTALLING, Platform.Status.UPGRADING):
        return False
    cluster = platform.cluster
    return apply_links(platform, kube.get_kube().service_links(cluster.access(), platform.name, cluster.exposure))


def apply_links(platform: Platform, found: list[ServiceLinkInfo]) -> bool:
    """Record the links the cluster reported for the platform; return True if an upgrade must follow.

    - an address the cluster reported is refused (platforms.service_addresses): the platform
      waits, saying why, and nothing of it reaches a link, Keycloak or Helm;
    - links changed what the values need (JupyterHub's URL is known only once Zenith has it):
      True, so the caller requests a follow-up upgrade that sets hub_url and the OAuth callbacks;
    - every service ready and the values up to date: the platform is Deployed.
    """
    cluster = platform.cluster
    zenith_origin = (settings.ZENITH_LINK_SCHEME, settings.ZENITH_LINK_PORT)
    checked = check_links(found, cluster.zenith_base_domain, expected_ingress_urls(platform), zenith_origin)
    record_links(platform, checked)
    if platform.operations.filter(state__in=Operation.ACTIVE_STATES).exists():
        return False
    problems = [link.problem for link in checked if link.problem]
    for problem in problems:
        logger.warning("platform=%s %s", platform.name, problem)
    ready = {link.name: link.url for link in checked if link.ready}
    if not problems and ready != platform.deployed_links:
        return True
    if checked and len(ready) == len(checked) == len(SERVICES):
        message, status = "", Platform.Status.DEPLOYED
    else:
        message, status = " ".join(problems) or waiting_message(cluster, checked), platform.status
    if (platform.status, platform.status_message) != (status, message):
        Platform.objects.filter(pk=platform.pk).update(status=status, status_message=message, updated_at=timezone.now())
    return False


def expected_ingress_urls(platform: Platform) -> dict[str, str]:
    """With Ingress exposure, the only URLs the platform's Ingresses may report."""
    cluster = platform.cluster
    if cluster.exposure != Cluster.Exposure.INGRESS:
        return {}
    return ingress_urls(platform.name, cluster.ingress_base_domain, cluster.ingress_tls)


def waiting_message(cluster: Cluster, checked: list[CheckedLink]) -> str:
    """What a platform whose release is deployed waits for, in words."""
    ready = {link.name for link in checked if link.ready}
    labels = ", ".join(SERVICE_LABELS[name][0] for name in SERVICES if name not in ready)
    if cluster.exposure == Cluster.Exposure.INGRESS:
        return f"Release deployed; waiting for the cluster's Ingresses to expose {labels}."
    return f"Release deployed; waiting for Zenith to expose {labels}."


def record_links(platform: Platform, checked: list[CheckedLink]) -> None:
    """Store the checked links, writing only those that changed (a pass looks at many platforms)."""
    now = timezone.now()
    recorded = {link.name: (link.url, link.ready) for link in platform.service_links.all()}
    for link in checked:
        if recorded.get(link.name) != (link.url, link.ready):
            ServiceLink.objects.update_or_create(
                platform=platform, name=link.name, defaults={"url": link.url, "ready": link.ready, "seen_at": now}
            )
    if set(recorded) - {link.name for link in checked}:
        ServiceLink.objects.filter(platform=platform).exclude(name__in=[link.name for link in checked]).delete()
    ServiceLink.objects.filter(platform=platform).update(seen_at=now)


def check_release(platform: Platform, release: ReleaseInfo | None) -> None:
    """Mark a Deployed platform Failed when its Helm release is gone or not deployed on the cluster."""
    if release is None:
        message = "The Helm release is missing from the cluster. Retry to install it again."
    elif release.status != "deployed":
        message = f"Helm reports the release as {release.status} (revision {release.revision}). Retry to upgrade it."
    else:
        return
    Platform.objects.filter(pk=platform.pk, status=Platform.Status.DEPLOYED).update(
        status=Platform.Status.FAILED, status_message=message, updated_at=timezone.now()
    )
    logger.warning("platform=%s disagrees with Helm: %s", platform.name, message)
