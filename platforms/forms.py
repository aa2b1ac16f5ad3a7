"""Forms of the console: registering a cluster, and launching or changing a BinderHub platform."""

import re
from decimal import Decimal

import semver
from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone

from platforms.models import PLATFORM_NAME_MAX_LENGTH, Cluster, Platform
from platforms.services import kube
from platforms.services.errors import ServiceError
from platforms.services.types import ClusterAccess, ServerVersion

KUBECONFIG_MAX_BYTES = 256 * 1024
DNS_NAME = re.compile(r"^(?=.{1,253}\Z)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\Z")


class ClusterForm(forms.ModelForm):
    """Register or change a cluster; on save the cluster is checked with the kubernetes client."""

    kubeconfig = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "autocomplete": "off"}),
        help_text="Paste a kubeconfig, or upload it below. It is stored encrypted and never shown again.",
    )
    kubeconfig_file = forms.FileField(required=False, label="Kubeconfig file")

    class Meta:
        model = Cluster
        fields = ["name", "context", "exposure", "ingress_base_domain", "ingress_class", "ingress_tls"]
        help_texts = {
            "name": "A short name for this cluster (lowercase letters, digits and '-').",
            "context": "The kubeconfig context to use; empty means its current context.",
            "exposure": "How platforms on this cluster expose their services: Zenith, or Kubernetes Ingress.",
            "ingress_base_domain": "Ingress only: services get hosts under this domain.",
            "ingress_class": "Ingress only: the ingress class to use (empty for the cluster's default).",
            "ingress_tls": "Ingress only: serve the services over HTTPS.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.server_version: ServerVersion | None = None
        if self.instance.pk:
            self.fields["kubeconfig"].help_text = "Leave empty to keep the stored kubeconfig."

    def clean_kubeconfig_file(self) -> str:
        upload = self.cleaned_data.get("kubeconfig_file")
        if not upload:
            return ""
        if upload.size > KUBECONFIG_MAX_BYTES:
            raise forms.ValidationError("The kubeconfig file is larger than 256 KB.")
        try:
            return upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError("The kubeconfig file is not UTF-8 text.") from None

    def clean_ingress_base_domain(self) -> str:
        domain = self.cleaned_data.get("ingress_base_domain", "").strip().lower().rstrip(".")
        if domain and not DNS_NAME.match(domain):
            raise forms.ValidationError("Enter a DNS domain such as apps.example.org.")
        return domain

    def clean(self) -> dict:
        cleaned = super().clean()
        text = cleaned.get("kubeconfig_file") or cleaned.get("kubeconfig") or ""
        if len(text.encode()) > KUBECONFIG_MAX_BYTES:
            self.add_error("kubeconfig", "The kubeconfig is larger than 256 KB.")
            return cleaned
        if not text and self.instance.pk:
            text = self.instance.kubeconfig
        if not text:
            self.add_error("kubeconfig", "Paste or upload the cluster's kubeconfig.")
            return cleaned
        if cleaned.get("exposure") == Cluster.Exposure.INGRESS and not cleaned.get("ingress_base_domain"):
            self.add_error("ingress_base_domain", "Ingress exposure needs a base domain.")
        if self.errors:
            return cleaned
        self._check_cluster(text, cleaned)
        return cleaned

    def _check_cluster(self, text: str, cleaned: dict) -> None:
        try:
            contexts = kube.kubeconfig_contexts(text)
        except ServiceError as exc:
            self.add_error("kubeconfig", str(exc))
            return
        context = cleaned.get("context", "")
        if context and context not in contexts.names:
            self.add_error(
                "context", f"The kubeconfig has no context {context!r}; it has: {', '.join(contexts.names)}."
            )
            return
        if not context and not contexts.current:
            self.add_error(
                "context", f"The kubeconfig has no current context; choose one of: {', '.join(contexts.names)}."
            )
            return
        try:
            self.server_version = kube.get_kube().server_version(ClusterAccess(kubeconfig=text, context=context))
        except ServiceError as exc:
            self.add_error("kubeconfig", f"The cluster check failed: {exc}")
            return
        self.kubeconfig_text = text

    def save(self, commit: bool = True) -> Cluster:
        cluster = super().save(commit=False)
        cluster.kubeconfig = self.kubeconfig_text
        if self.server_version:
            cluster.server_version = self.server_version.git_version
            cluster.checked_at = timezone.now()
            cluster.check_error = ""
        if commit:
            cluster.save()
        return cluster


class PlatformOptionsForm(forms.ModelForm):
    """The options of a platform that launch and edit share, with Azimuth's defaults and our limits."""

    app_version = forms.ChoiceField(
        label="App version", help_text="The version of the BinderHub application to use", choices=()
    )

    class Meta:
        model = Platform
        fields = [
            "app_version",
            "servers_per_user",
            "notebook_cpus",
            "notebook_ram_gb",
            "notebook_storage_gb",
            "registry_storage_gb",
        ]
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
            "notebook_cpus": "The number of CPUs to allocate to each user notebook",
            "notebook_ram_gb": "The amount of RAM to allocate to each user notebook",
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
            field.validators += [MinValueValidator(low), MaxValueValidator(high)]
            field.widget.attrs.update({"min": low, "max": high})
        self.fields["notebook_cpus"].widget.attrs["step"] = "0.5"


class LaunchForm(PlatformOptionsForm):
    """Launch a new platform: its name and cluster, then the options."""

    class Meta(PlatformOptionsForm.Meta):
        fields = ["name", "cluster", *PlatformOptionsForm.Meta.fields]
        labels = {**PlatformOptionsForm.Meta.labels, "name": "Platform name", "cluster": "Kubernetes cluster"}
        help_texts = {
            **PlatformOptionsForm.Meta.help_texts,
            "name": "A name to identify the BinderHub platform",
            "cluster": "The Kubernetes cluster on which to deploy BinderHub",
        }

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
