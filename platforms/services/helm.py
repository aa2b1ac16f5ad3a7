"""Installs, upgrades and removes Helm releases through pyhelm3 and the helm CLI."""

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pyhelm3
from asgiref.sync import async_to_sync
from django.conf import settings

from platforms.services.errors import BadInput, NotFound, Unavailable
from platforms.services.types import ClusterAccess, ReleaseInfo, ReleaseSpec

logger = logging.getLogger(__name__)


class HelmService:
    """Wraps pyhelm3 (which is async) once, with async_to_sync, for the synchronous worker."""

    def __init__(self, executable: str, timeout_seconds: int):
        self.executable = executable
        self.timeout_seconds = timeout_seconds

    def install_or_upgrade(self, spec: ReleaseSpec) -> ReleaseInfo:
        """Install the release, or upgrade it with the complete values; atomic, so a failure rolls back.

        Raises BadInput when the chart or values are refused, Unavailable when helm or the cluster fails.
        """
        return async_to_sync(self._install_or_upgrade)(spec)

    def uninstall(self, name: str, cluster: ClusterAccess) -> None:
        """Remove the release from its namespace; a release that does not exist is already removed."""
        async_to_sync(self._uninstall)(name, cluster)

    def release(self, name: str, cluster: ClusterAccess) -> ReleaseInfo | None:
        """The release's current revision, or None when there is no such release."""
        return async_to_sync(self._release)(name, cluster)

    def recover_interrupted(self, name: str, cluster: ClusterAccess) -> str:
        """Clear a release left pending by a killed helm (which blocks every later upgrade).

        pending-install is uninstalled (the install starts over), pending-upgrade or -rollback is
        rolled back to the last good revision. Returns what was done ("" when nothing was needed).
        """
        release = self.release(name, cluster)
        if release is None or not release.status.startswith("pending-"):
            return ""
        if release.status == "pending-install":
            self.uninstall(name, cluster)
            return f"Removed the interrupted install of revision {release.revision}."
        async_to_sync(self._rollback)(name, cluster)
        return f"Rolled back the interrupted {release.status.removeprefix('pending-')} of revision {release.revision}."

    async def _rollback(self, name: str, cluster: ClusterAccess) -> None:
        with _kubeconfig_file(cluster) as path:
            command = pyhelm3.Command(
                executable=self.executable,
                kubeconfig=path,
                kubecontext=cluster.context or None,
                default_timeout=f"{self.timeout_seconds}s",
            )
            try:
                await command.rollback(name, None, namespace=name)
            except pyhelm3.errors.Error as exc:
                raise _translate(exc) from None

    async def _release(self, name: str, cluster: ClusterAccess) -> ReleaseInfo | None:
        with _kubeconfig_file(cluster) as path:
            helm = self._client(path, cluster.context)
            try:
                revision = await helm.get_current_revision(name, namespace=name)
            except pyhelm3.errors.ReleaseNotFoundError:
                return None
            except pyhelm3.errors.Error as exc:
                raise _translate(exc) from None
        return ReleaseInfo(name=name, namespace=name, revision=revision.revision, status=revision.status.value)

    async def _install_or_upgrade(self, spec: ReleaseSpec) -> ReleaseInfo:
        with _kubeconfig_file(spec.cluster) as path:
            helm = self._client(path, spec.cluster.context)
            try:
                chart = await helm.get_chart(spec.chart, repo=spec.repo or None, version=spec.version or None)
                revision = await helm.install_or_upgrade_release(
                    spec.name,
                    chart,
                    spec.values,
                    namespace=spec.namespace,
                    create_namespace=True,
                    atomic=True,
                    timeout=f"{self.timeout_seconds}s",
                )
            except pyhelm3.errors.Error as exc:
                raise _translate(exc) from None
        return ReleaseInfo(
            name=spec.name,
            namespace=spec.namespace,
            revision=revision.revision,
            status=revision.status.value,
            chart_version=chart.metadata.version,
            notes=revision.notes or "",
        )

    async def _uninstall(self, name: str, cluster: ClusterAccess) -> None:
        with _kubeconfig_file(cluster) as path:
            helm = self._client(path, cluster.context)
            try:
                await helm.uninstall_release(name, namespace=name, wait=False, timeout=f"{self.timeout_seconds}s")
            except pyhelm3.errors.Error as exc:
                raise _translate(exc) from None

    def _client(self, kubeconfig: Path, context: str) -> pyhelm3.Client:
        try:
            return pyhelm3.Client(
                executable=self.executable,
                kubeconfig=kubeconfig,
                kubecontext=context or None,
                default_timeout=f"{self.timeout_seconds}s",
            )
        except (AssertionError, OSError) as exc:
            raise Unavailable(f"The helm executable {self.executable!r} cannot be run: {exc}") from None


def _translate(exc: "pyhelm3.errors.Error") -> Exception:
    """Turn a pyhelm3 error into ours; pyhelm3 only classifies some messages, so read the rest."""
    message = (exc.stderr or b"").decode(errors="replace").strip() or str(exc)
    if isinstance(exc, pyhelm3.errors.ChartNotFoundError) or "not found" in message.lower():
        return NotFound(f"Helm could not find the chart: {message}")
    if isinstance(exc, pyhelm3.errors.FailedToRenderChartError | pyhelm3.errors.InvalidResourceError):
        return BadInput(f"Helm refused the chart or its values: {message}")
    logger.warning("helm failed: %s", message)
    return Unavailable(f"Helm failed: {message}")


@contextmanager
def _kubeconfig_file(cluster: ClusterAccess) -> Iterator[Path]:
    """A private temporary file holding the kubeconfig for the duration of one helm call."""
    with tempfile.TemporaryDirectory(prefix="binderadmin-helm-") as folder:
        path = Path(folder) / "kubeconfig"
        path.touch(mode=0o600)
        path.write_text(cluster.kubeconfig)
        yield path


@cache
def get_helm() -> HelmService:
    """The configured Helm service."""
    return HelmService(settings.HELM_EXECUTABLE, settings.HELM_TIMEOUT_SECONDS)
