"""Database models of the console: clusters, BinderHub platforms, their operations and audit events."""

import json
import logging
from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxLengthValidator, RegexValidator
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from platforms import crypto
from platforms.service_addresses import is_service_url
from platforms.services.types import ClusterAccess
from platforms.values import PLATFORM_NAME_MAX_LENGTH, service_label

logger = logging.getLogger(__name__)

# A DNS-1035 label: it names a Helm release, a namespace and Keycloak groups (its length limit comes
# from the names the charts derive from it: platforms.values).
dns1035_label = RegexValidator(
    r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z",
    "Use lowercase letters, digits and '-', starting with a letter and ending with a letter or digit.",
)


class Cluster(models.Model):
    """An existing Kubernetes cluster that an admin registered, reached through a stored kubeconfig."""

    class Exposure(models.TextChoices):
        ZENITH = "zenith", "Zenith"
        INGRESS = "ingress", "Ingress"

    name = models.CharField(max_length=63, unique=True, validators=[dns1035_label])
    kubeconfig_encrypted = models.TextField(editable=False)
    context = models.CharField(max_length=253, blank=True)
    exposure = models.CharField(max_length=16, choices=Exposure.choices, default=Exposure.ZENITH)
    ingress_base_domain = models.CharField(max_length=253, blank=True)
    ingress_class = models.CharField(max_length=253, blank=True)
    ingress_tls = models.BooleanField(default=True)
    # Ingress only: the cert-manager ClusterIssuer that issues the services' certificates.
    ingress_cluster_issuer = models.CharField(max_length=253, blank=True)
    # The StorageClass of every volume the platforms make (empty: the cluster's default).
    storage_class = models.CharField(max_length=253, blank=True)
    # Zenith only: when set, a service address the cluster reports is accepted only under it.
    zenith_base_domain = models.CharField(max_length=253, blank=True)
    # The kubeconfig turns off the API server's certificate check (shown as a warning).
    skips_tls_verify = models.BooleanField(default=False, editable=False)
    checked_at = models.DateTimeField(null=True, blank=True)
    server_version = models.CharField(max_length=64, blank=True)
    check_error = models.TextField(blank=True)
    # Its nodes, storage classes and pods' requests at the last check (platforms.capacity); null until read.
    capacity = models.JSONField(null=True, blank=True, editable=False)
    capacity_error = models.TextField(blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def kubeconfig(self) -> str:
        return crypto.decrypt(self.kubeconfig_encrypted)

    @kubeconfig.setter
    def kubeconfig(self, value: str) -> None:
        self.kubeconfig_encrypted = crypto.encrypt(value)

    def access(self) -> ClusterAccess:
        """What the Kubernetes and Helm services need to reach this cluster (they check it at every use)."""
        return ClusterAccess(kubeconfig=self.kubeconfig, context=self.context)

    def get_absolute_url(self) -> str:
        return reverse("cluster_detail", args=[self.name])


class PlatformQuerySet(models.QuerySet):
    def visible_to(self, user) -> "PlatformQuerySet":
        """Admins and platform-users see all; others the platforms whose groups they are in."""
        from platforms.access_rules import visible_platform_filter

        return self.filter(visible_platform_filter(user))


class Platform(models.Model):
    """A BinderHub platform: one Helm release of the application chart on one cluster."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        INSTALLING = "installing", "Installing"
        DEPLOYED = "deployed", "Deployed"
        UPGRADING = "upgrading", "Upgrading"
        UNINSTALLING = "uninstalling", "Uninstalling"
        FAILED = "failed", "Failed"

    name = models.CharField(
        max_length=PLATFORM_NAME_MAX_LENGTH,
        unique=True,
        validators=[dns1035_label, MaxLengthValidator(PLATFORM_NAME_MAX_LENGTH)],
    )
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="platforms")
    app_version = models.CharField(max_length=64)
    servers_per_user = models.PositiveIntegerField(default=3)
    notebook_cpus = models.DecimalField(max_digits=6, decimal_places=2, default=1)
    notebook_ram_gb = models.PositiveIntegerField(default=2)
    notebook_storage_gb = models.PositiveIntegerField(default=10)
    registry_storage_gb = models.PositiveIntegerField(default=10)
    # The cluster's NodePort through which kubelets pull the images BinderHub builds (localhost:<port>),
    # chosen at the first install among the ports free on the cluster.
    registry_node_port = models.PositiveIntegerField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_message = models.TextField(blank=True)
    secrets_encrypted = models.TextField(blank=True, editable=False)
    # The service links the last successful Helm deploy was given (hub_url and OAuth callbacks
    # depend on them); a difference from the recorded links calls for a follow-up upgrade.
    deployed_links = models.JSONField(default=dict, blank=True)
    # When the worker uninstalls it by itself (null: never); changing it is a change of the platform.
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    objects = PlatformQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "registry_node_port"], name="one_platform_per_node_port")
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("platform_detail", args=[self.name])

    def ready_links(self) -> dict[str, str]:
        """Service name -> URL of the links that are ready (and of the only shape ever recorded)."""
        return {link.name: link.url for link in self.service_links.all() if link.ready and is_service_url(link.url)}

    # The options of the launch form that a Helm revision deploys (an operation records them).
    OPTION_FIELDS = (
        "app_version",
        "servers_per_user",
        "notebook_cpus",
        "notebook_ram_gb",
        "notebook_storage_gb",
        "registry_storage_gb",
    )

    def options(self) -> dict[str, str | int]:
        """The deployable options as JSON values (CPUs as a string, so no float rounds them)."""
        values = {field: getattr(self, field) for field in self.OPTION_FIELDS}
        values["notebook_cpus"] = str(values["notebook_cpus"])
        return values

    @property
    def secrets(self) -> dict[str, str]:
        """Generated secrets (registry password, OIDC client secret), decrypted."""
        return json.loads(crypto.decrypt(self.secrets_encrypted) or "{}")

    @secrets.setter
    def secrets(self, value: dict[str, str]) -> None:
        self.secrets_encrypted = crypto.encrypt(json.dumps(value, sort_keys=True))


class PlatformBusy(Exception):
    """The platform already has an operation queued or running."""


class OperationManager(models.Manager):
    # The status a platform shows while an operation of each kind waits or runs.
    STATUS_FOR_KIND = {
        "install": Platform.Status.PENDING,
        "upgrade": Platform.Status.UPGRADING,
        "uninstall": Platform.Status.UNINSTALLING,
        "rollback": Platform.Status.UPGRADING,
    }

    def request(
        self, platform: Platform, kind: str, actor, reason: str = "", rollback_revision: int | None = None
    ) -> "Operation":
        """Record a queued operation and move the platform to its waiting status, atomically.

        Raises PlatformBusy if another operation is queued or running: one change at a time.
        """
        try:
            with transaction.atomic():
                locked = Platform.objects.select_for_update().get(pk=platform.pk)
                if self.filter(platform=locked, state__in=Operation.ACTIVE_STATES).exists():
                    raise PlatformBusy(f"{locked.name} is busy with another operation; wait for it to finish.")
                operation = self.create(
                    platform=locked,
                    kind=kind,
                    actor=actor,
                    reason=reason,
                    options=locked.options(),
                    rollback_revision=rollback_revision,
                )
                locked.status = self.STATUS_FOR_KIND[kind]
                locked.status_message = ""
                locked.save(update_fields=["status", "status_message", "updated_at"])
        except IntegrityError:
            # The partial unique constraint caught a race that the lock could not (SQLite).
            raise PlatformBusy(f"{platform.name} is busy with another operation; wait for it to finish.") from None
        platform.refresh_from_db(fields=["status", "status_message"])
        return operation


class Operation(models.Model):
    """One request to change a platform through Helm, and what happened to it."""

    class Kind(models.TextChoices):
        INSTALL = "install", "Install"
        UPGRADE = "upgrade", "Upgrade"
        UNINSTALL = "uninstall", "Uninstall"
        ROLLBACK = "rollback", "Rollback"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="operations")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # What an operation the console requested by itself is for, in words (empty for a person's request).
    reason = models.CharField(max_length=200, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    helm_revision = models.PositiveIntegerField(null=True, blank=True)
    # The platform's options when it was requested (Platform.options): what its Helm revision deploys,
    # and what a rollback to that revision restores in the console.
    options = models.JSONField(default=dict, blank=True)
    # A rollback's target: the Helm revision it goes back to.
    rollback_revision = models.PositiveIntegerField(null=True, blank=True)
    # "<host>:<pid>" of the worker running it, so reconcile can tell a dead worker from a slow one.
    worker = models.CharField(max_length=255, blank=True)
    # "<host>:<pid>" of the worker cluster (django-q2's sentinel) that took its task from the queue:
    # if that cluster dies before the operation starts, reconcile sends the task again at once.
    taken_by = models.CharField(max_length=255, blank=True)
    # Automatic retries made after a service did not answer, and when the next one is due.
    retries = models.PositiveSmallIntegerField(default=0)
    retry_at = models.DateTimeField(null=True, blank=True)
    output = models.TextField(blank=True)
    error = models.TextField(blank=True)

    objects = OperationManager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            # One change at a time per platform, enforced by the database, not only by the views.
            models.UniqueConstraint(
                fields=["platform"],
                condition=Q(state__in=["queued", "running"]),
                name="one_active_operation_per_platform",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.platform_id} ({self.state})"


class ServiceLink(models.Model):
    """A service of a platform (BinderHub, JupyterHub) as exposed by Zenith or an Ingress."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="service_links")
    name = models.CharField(max_length=32)
    # Only ever https://<host> (or the Ingress URL the console asked for): platforms.service_addresses.
    url = models.URLField(max_length=500, blank=True)
    ready = models.BooleanField(default=False)
    seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["platform", "name"], name="one_link_per_platform_service")]

    def __str__(self) -> str:
        return f"{self.platform_id}/{self.name}"

    @property
    def label(self) -> str:
        """The service's display name: the console's own, never what the cluster annotates."""
        return service_label(self.name)


class AuditEvent(models.Model):
    """Who did what to which platform, cluster or group, and when."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=255)
    detail = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"

    @classmethod
    def record(cls, actor, action: str, target: str, detail: str = "") -> "AuditEvent":
        """Store the event and log it, naming the user and the target."""
        logger.info("user=%s action=%s target=%s %s", getattr(actor, "username", "-"), action, target, detail)
        return cls.objects.create(actor=actor, action=action, target=target, detail=detail)


class LeaseQuerySet(models.QuerySet):
    def take(self, name: str, holder: str, seconds: float) -> bool:
        """Hold the lease for `seconds` if nobody holds it now (or `holder` already does); True if taken.

        One conditional UPDATE, atomic in every database, so it works across worker processes and
        hosts, and a holder that dies frees it when its time runs out.
        """
        now = timezone.now()
        self.get_or_create(name=name, defaults={"expires_at": now})
        free = Q(expires_at__lte=now) | Q(holder=holder)
        return bool(self.filter(free, name=name).update(holder=holder, expires_at=now + timedelta(seconds=seconds)))

    def give_back(self, name: str, holder: str) -> None:
        """End the holder's lease now (a lease someone else has taken since is left alone)."""
        self.filter(name=name, holder=holder).update(expires_at=timezone.now())


class Lease(models.Model):
    """A named claim that one process holds until it expires: the reconcile pass, a worker cluster's life."""

    name = models.CharField(max_length=255, primary_key=True)
    holder = models.CharField(max_length=255, blank=True)
    expires_at = models.DateTimeField()

    objects = LeaseQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or '-'} until {self.expires_at:%H:%M:%S}"


class PlatformUsage(models.Model):
    """What the platform's JupyterHub last said about its use (platforms.usage), read by the worker.

    A table of its own, so the worker's writes never race a person's change of the platform's row.
    """

    platform = models.OneToOneField(Platform, on_delete=models.CASCADE, primary_key=True, related_name="usage")
    # Users with a server that runs or starts, and the servers that run, at `read_at` (the last good read).
    active_users = models.PositiveIntegerField(null=True, blank=True)
    servers = models.PositiveIntegerField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # The last attempt, and why it gave no numbers (empty when it did): the pages then say "unknown".
    checked_at = models.DateTimeField(null=True, blank=True, db_index=True)
    error = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"{self.platform_id}: {self.active_users} users, {self.servers} servers"
