"""Forms of the console: registering a cluster, and launching or changing a BinderHub platform."""

import re
from datetime import datetime
from decimal import Decimal

import semver
from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.urls import reverse
from django.utils import timezone

from platforms import capacity, expiry
from platforms.models import Cluster, Platform
from platforms.services import kube, kubeconfig
from platforms.services.errors import ServiceError
from platforms.services.types import ClusterAccess, ServerVersion
from platforms.values import CPU_GUARANTEE_FRACTION, MEMORY_GUARANTEE_FRACTION, PLATFORM_NAME_MAX_LENGTH

DNS_NAME = re.compile(r"^(?=.{1,253}\Z)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\Z")
PASTE_AGAIN = "For your safety the kubeconfig is not sent back to the browser: paste or upload it again."


class SecretTextarea(forms.Textarea):
    """A textarea that never renders what was submitted: a kubeconfig holds credentials."""

    def format_value(self, value: object) -> None:
        return None


class ClusterForm(forms.ModelForm):
    """Register or change a cluster; on save the kubeconfig is checked, cut down, and the cluster asked."""

    kubeconfig = forms.CharField(
        required=False,
        widget=SecretTextarea(attrs={"rows": 8, "spellcheck": "false", "autocomplete": "off"}),
        help_text=(
            "Paste a kubeconfig, or upload it below. Credentials must be inline (token, or "
            "client-certificate-data and client-key-data); exec plugins and file paths are refused. "
            "Only the chosen context is kept, encrypted, and never shown again."
        ),
    )
    kubeconfig_file = forms.FileField(required=False, label="Kubeconfig file")

    class Meta:
        model = Cluster
        fields = [
            "name",
            "exposure",
            "zenith_base_domain",
            "ingress_base_domain",
            "ingress_class",
            "ingress_tls",
            "ingress_cluster_issuer",
            "storage_class",
        ]
        labels = {
            "zenith_base_domain": "Zenith base domain",
            "ingress_base_domain": "Ingress base domain",
            "ingress_class": "Ingress class",
            "ingress_tls": "Serve services over HTTPS",
            "ingress_cluster_issuer": "cert-manager ClusterIssuer",
            "storage_class": "Storage class",
        }
        help_texts = {
            "name": "A short name for this cluster (lowercase letters, digits and '-').",
            "exposure": "How platforms on this cluster expose their services: Zenith, or Kubernetes Ingress.",
            "zenith_base_domain": (
                "Optional, e.g. apps.example.org: only service addresses under this domain are accepted "
                "from the cluster's Zenith operator. Empty accepts any plain host name."
            ),
            "ingress_base_domain": "Services get hosts under this domain.",
            "ingress_class": "The ingress class to use (empty for the cluster's default).",
            "ingress_tls": "Link to the services with https://.",
            "ingress_cluster_issuer": (
                "Optional: the cert-manager ClusterIssuer that issues the services' certificates. Empty: "
                "create the Secrets binderhub-tls and jupyterhub-tls in each platform's namespace yourself."
            ),
            "storage_class": (
                "Optional: the StorageClass of every volume the platforms make (registry, hub database, "
                "notebooks). Empty: the cluster's default StorageClass, which must then exist."
            ),
        }

    # Shown only with the matching exposure (by CSS on the form, see _field.html's `data-exposure`).
    EXPOSURE_FIELDS = {
        "zenith_base_domain": Cluster.Exposure.ZENITH,
        "ingress_base_domain": Cluster.Exposure.INGRESS,
        "ingress_class": Cluster.Exposure.INGRESS,
        "ingress_tls": Cluster.Exposure.INGRESS,
        "ingress_cluster_issuer": Cluster.Exposure.INGRESS,
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.server_version: ServerVersion | None = None
        self.capacity_read: tuple[dict | None, str] = (None, "")
        self.checked: kubeconfig.CheckedKubeconfig | None = None
        # The context refers to the kubeconfig, so it comes after it.
        self.fields["context"] = forms.CharField(
            required=False,
            max_length=253,
            initial=self.instance.context,
            help_text="The kubeconfig context to use; empty means its current context.",
            widget=forms.TextInput(attrs={"list": "kubeconfig-contexts", "autocomplete": "off"}),
        )
        # Once a kubeconfig is pasted, its contexts are offered as the context field's choices.
        self.fields["kubeconfig"].widget.attrs.update(
            {
                "hx-post": reverse("kubeconfig_contexts"),
                "hx-trigger": "change, keyup changed delay:500ms",
                "hx-target": "#kubeconfig-contexts",
                "hx-swap": "outerHTML",
            }
        )
        if self.instance.pk:
            self.fields["kubeconfig"].help_text = "Leave empty to keep the stored kubeconfig."
        for name, exposure in self.EXPOSURE_FIELDS.items():
            self.fields[name].exposure = exposure

    def refuse_too_large(self) -> None:
        """Say beside the kubeconfig field that the last post was too large to be read at all."""
        self.cleaned_data = {}  # an unbound form has none, and add_error needs it
        limit = kubeconfig.MAX_BYTES // 1024
        self.add_error("kubeconfig", f"What was sent is too large: a kubeconfig is at most {limit} KB. {PASTE_AGAIN}")

    def clean_kubeconfig_file(self) -> str:
        upload = self.cleaned_data.get("kubeconfig_file")
        if not upload:
            return ""
        if upload.size > kubeconfig.MAX_BYTES:
            raise forms.ValidationError(f"The kubeconfig file is larger than {kubeconfig.MAX_BYTES // 1024} KB.")
        try:
            return upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError("The kubeconfig file is not UTF-8 text.") from None

    def clean_ingress_base_domain(self) -> str:
        return self._domain("ingress_base_domain")

    def clean_zenith_base_domain(self) -> str:
        return self._domain("zenith_base_domain")

    def clean_storage_class(self) -> str:
        return self._object_name("storage_class")

    def clean_ingress_cluster_issuer(self) -> str:
        return self._object_name("ingress_cluster_issuer")

    def _object_name(self, name: str) -> str:
        value = self.cleaned_data.get(name, "").strip()
        if value and not DNS_NAME.match(value):
            raise forms.ValidationError("Enter the name of a Kubernetes object (lowercase letters, digits, '-', '.').")
        return value

    def _domain(self, name: str) -> str:
        domain = self.cleaned_data.get(name, "").strip().lower().rstrip(".")
        if domain and not DNS_NAME.match(domain):
            raise forms.ValidationError("Enter a DNS domain such as apps.example.org.")
        return domain

    def clean(self) -> dict:
        cleaned = super().clean()
        pasted = cleaned.get("kubeconfig_file") or cleaned.get("kubeconfig") or ""
        text = pasted or (self.instance.kubeconfig if self.instance.pk else "")
        if not text:
            self.add_error("kubeconfig", "Paste or upload the cluster's kubeconfig.")
        if cleaned.get("exposure") == Cluster.Exposure.INGRESS and not cleaned.get("ingress_base_domain"):
            self.add_error("ingress_base_domain", "Ingress exposure needs a base domain.")
        if text and not self.errors:
            self._check_cluster(text, cleaned.get("context", ""))
        if self.errors and pasted:
            self.add_error("kubeconfig", PASTE_AGAIN)
        return cleaned

    def _check_cluster(self, text: str, context: str) -> None:
        try:
            found = kubeconfig.contexts(text)
            if context and context not in found.names:
                names = ", ".join(found.names)
                self.add_error("context", f"The kubeconfig has no context {context!r}; it has: {names}.")
                return
            if not context and not found.current:
                names = ", ".join(found.names)
                self.add_error("context", f"The kubeconfig has no current context; choose one of: {names}.")
                return
            self.checked = kubeconfig.check(text, context)
        except ServiceError as exc:
            self.add_error("kubeconfig", str(exc))
            return
        try:
            access = ClusterAccess(kubeconfig=self.checked.text, context=self.checked.context)
            self.server_version = kube.get_kube().server_version(access)
        except ServiceError as exc:
            self.add_error("kubeconfig", f"The cluster check failed: {exc}")
            return
        self.capacity_read = capacity.read(access)
        found = capacity.from_json(self.capacity_read[0])
        storage_class = self.cleaned_data.get("storage_class", "")
        if found and found.storage_classes and storage_class and storage_class not in found.storage_classes:
            self.add_error(
                "storage_class",
                f"The cluster has no StorageClass {storage_class!r}; it has: {', '.join(found.storage_classes)}.",
            )

    def save(self, commit: bool = True) -> Cluster:
        cluster = super().save(commit=False)
        # Only the checked context is stored: the rest of a kubeconfig is never needed, nor kept.
        cluster.kubeconfig = self.checked.text
        cluster.context = self.checked.context
        cluster.skips_tls_verify = self.checked.skips_tls_verify
        if cluster.exposure != Cluster.Exposure.ZENITH:
            cluster.zenith_base_domain = ""
        if self.server_version:
            cluster.server_version = self.server_version.git_version
            cluster.checked_at = timezone.now()
            cluster.check_error = ""
            cluster.capacity, cluster.capacity_error = self.capacity_read
        if commit:
            cluster.save()
        return cluster


class PlatformOptionsForm(forms.ModelForm):
    """The options of a platform that launch and edit share, with Azimuth's defaults and our limits."""

    app_version = forms.ChoiceField(
        label="App version", help_text="The version of the BinderHub application to use", choices=()
    )
    # A day, not a moment: people plan platforms by the day (a course's last day), and a date input
    # needs no time zone from the browser. clean_expires_at turns it into the end of that day.
    expires_at = forms.DateField(
        required=False,
        label="Expires on",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    EXPIRY_HELP = (
        "Optional. At the end of this day ({zone} time) the console deletes the platform by itself: its "
        "release, namespace, volumes (the notebooks' files too) and Keycloak groups. Empty: it stays until "
        "someone deletes it. Changing only this date saves it without an upgrade."
    )

    class Meta:
        model = Platform
        fields = [*Platform.OPTION_FIELDS, "expires_at"]
        labels = {
            "servers_per_user": "Servers per user",
            "notebook_cpus": "Notebook CPUs",
            "notebook_ram_gb": "Notebook RAM (GB)",
            "notebook_storage_gb": "Notebook storage (GB)",
            "registry_storage_gb": "Container registry storage (GB)",
        }
        help_texts = {
            "servers_per_user": (
                "The maximum number of JupyterHub servers each user can run simultaneously. Set to 0 for unlimited."
            ),
            "notebook_cpus": (
                "The number of CPUs to allocate to each user notebook: the most it may use; "
                f"{CPU_GUARANTEE_FRACTION:.0%} of it is reserved on its node"
            ),
            "notebook_ram_gb": (
                "The amount of RAM to allocate to each user notebook: the most it may use; "
                f"{MEMORY_GUARANTEE_FRACTION:.0%} of it is reserved on its node"
            ),
            "notebook_storage_gb": "The amount of disk storage to allocate to each user notebook",
            "registry_storage_gb": "The storage allocated to BinderHub's docker image registry",
        }

    def __init__(self, *args, app_versions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["app_version"].choices = [(v, v) for v in app_versions]
        if app_versions and not self.instance.pk:
            self.fields["app_version"].initial = app_versions[0]
        limits = {
            "servers_per_user": (0, settings.LAUNCH_MAX_SERVERS_PER_USER),
            "notebook_cpus": (Decimal("0.5"), settings.LAUNCH_MAX_CPUS),
            "notebook_ram_gb": (1, settings.LAUNCH_MAX_RAM_GB),
            "notebook_storage_gb": (1, settings.LAUNCH_MAX_STORAGE_GB),
            "registry_storage_gb": (10, settings.LAUNCH_MAX_STORAGE_GB),
        }
        for name, (low, high) in limits.items():
            field = self.fields[name]
            # Ours replace the model field's own bounds, which would repeat the same message.
            kept = [v for v in field.validators if not isinstance(v, MinValueValidator | MaxValueValidator)]
            field.validators = [*kept, MinValueValidator(low), MaxValueValidator(high)]
            field.widget.attrs.update({"min": low, "max": high})
        self.fields["notebook_cpus"].widget.attrs["step"] = "0.5"
        self.fields["expires_at"].help_text = self.EXPIRY_HELP.format(zone=settings.TIME_ZONE)
        # The field is a day; the form shows the day whose end the stored moment is.
        if self.instance.expires_at:
            self.initial["expires_at"] = expiry.day_of(self.instance.expires_at)
        today = timezone.localdate(timezone=timezone.get_default_timezone())
        self.fields["expires_at"].widget.attrs["min"] = f"{today:%Y-%m-%d}"
        # Said after a launch or change that goes ahead on a cluster that is already full.
        self.capacity_warning = ""

    def clean_expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_at")
        if day is None:
            return None  # empty: no expiry (a change that clears it removes it)
        if self.instance.expires_at and day == expiry.day_of(self.instance.expires_at):
            expires_at = self.instance.expires_at  # unchanged: keep the stored moment as it is
        elif day > expiry.LAST_DAY:
            raise forms.ValidationError(f"Choose a day up to {expiry.LAST_DAY:%Y-%m-%d}.")
        else:
            expires_at = expiry.end_of_day(day)
        if expires_at <= timezone.now():
            raise forms.ValidationError(
                f"{day:%Y-%m-%d} has passed: choose today or a later day, or leave it empty for no expiry."
            )
        return expires_at

    def clean(self) -> dict:
        cleaned = super().clean()
        cluster = cleaned.get("cluster") or (self.instance.cluster if self.instance.cluster_id else None)
        cpus, ram_gb = cleaned.get("notebook_cpus"), cleaned.get("notebook_ram_gb")
        if cluster is None or cpus is None or ram_gb is None:
            return cleaned
        found = capacity.from_json(cluster.capacity)
        refusal = capacity.notebook_refusal(found, cpus, ram_gb, cluster.name)
        if refusal:
            too_many_cpus = all(node.cpus < cpus for node in found.nodes if node.schedulable)
            self.add_error("notebook_cpus" if too_many_cpus else "notebook_ram_gb", refusal)
        else:
            self.capacity_warning = capacity.overcommit_warning(found, cpus, ram_gb, cluster.name)
        return cleaned


class LaunchForm(PlatformOptionsForm):
    """Launch a new platform: its name and cluster, then the options."""

    class Meta(PlatformOptionsForm.Meta):
        fields = ["name", "cluster", *PlatformOptionsForm.Meta.fields]
        labels = {**PlatformOptionsForm.Meta.labels, "name": "Platform name", "cluster": "Kubernetes cluster"}
        help_texts = {
            **PlatformOptionsForm.Meta.help_texts,
            "name": (
                "A name to identify the BinderHub platform: lowercase letters, digits and '-', starting with "
                f"a letter and ending with a letter or digit, at most {PLATFORM_NAME_MAX_LENGTH} characters"
            ),
            "cluster": "The Kubernetes cluster on which to deploy BinderHub",
        }
        error_messages = {"name": {"unique": "A platform with this name already exists: choose another name."}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs.update(
            {"maxlength": PLATFORM_NAME_MAX_LENGTH, "autocomplete": "off", "spellcheck": "false"}
        )
        self.fields["cluster"].empty_label = None if Cluster.objects.count() == 1 else "Choose a cluster"

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()


class EditPlatformForm(PlatformOptionsForm):
    """Change a platform's app version and options: an upgrade. Downgrades are refused."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.app_version
        choices = list(self.fields["app_version"].choices)
        if current not in dict(choices):
            # Keep the platform editable when its version has left the repository.
            choices.append((current, f"{current} (current; no longer in the repository)"))
            self.fields["app_version"].choices = choices

    def clean_registry_storage_gb(self) -> int:
        new = self.cleaned_data["registry_storage_gb"]
        current = self.instance.registry_storage_gb
        if new is not None and new < current:
            raise forms.ValidationError(
                f"The registry's volume cannot shrink: keep at least {current} GB. (Growing it needs a "
                "storage class that allows volume expansion.)"
            )
        return new

    def clean_app_version(self) -> str:
        new = self.cleaned_data["app_version"]
        current = self.instance.app_version
        try:
            older = semver.Version.parse(new) < semver.Version.parse(current)
        except ValueError:
            older = False
        if older:
            raise forms.ValidationError(
                f"Downgrading from {current} to {new} is not supported: a chart's upgrade steps only run "
                f"forwards. Keep {current} or choose a newer version."
            )
        return new
