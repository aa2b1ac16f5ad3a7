"""Installs, upgrades, rolls back and removes Helm releases through pyhelm3 and the helm CLI.

We drive pyhelm3's `Command` (its public layer over the helm CLI) rather than its `Client`: the
Client runs `helm version` on every construction and `helm show chart` before every install,
three helm processes where one does. Deploy latency is a product target (bench/).
"""

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pyhelm3
import semver
from asgiref.sync import async_to_sync
from django.conf import settings

from platforms.services import kubeconfig
from platforms.services.errors import BadInput, Conflict, NoAnswer, NotFound, ServiceError, Unavailable
from platforms.services.interfaces import Helm
from platforms.services.types import ClusterAccess, ReleaseInfo, ReleaseSpec

logger = logging.getLogger(__name__)

# helm's messages for a chart or values it refuses, and for a release another helm is changing.
REFUSED = ("values don't meet the specifications", "failed to render chart", "execution error", "is invalid")
IN_PROGRESS = "another operation (install/upgrade/rollback) is in progress"
# helm's messages when the cluster did not answer at all (a later try may work).
UNREACHABLE = (
    "kubernetes cluster unreachable",
    "connection refused",
    "connection reset by peer",
    "i/o timeout",
    "tls handshake timeout",
    "http2: client connection lost",
)
# How many revisions helm keeps of a release (--history-max on every upgrade and rollback); older ones
# are deleted, so a rollback reaches only these.
HISTORY_MAX = 10


class HelmService:
    """Verb methods on releases; each call names the cluster it works on."""

    def __init__(self, executable: str, timeout_seconds: int, openapi_validation: bool = True):
        self.executable = executable
        self.timeout_seconds = timeout_seconds
        self.openapi_validation = openapi_validation
        self._atomic_flag: str | None = None

    def install_or_upgrade(self, spec: ReleaseSpec) -> ReleaseInfo:
        """`helm upgrade --install` with the complete values, atomic so a failed upgrade rolls back.

        Raises BadInput when the chart or values are refused (schema, render), NotFound when the
        chart or version is not in the repository, Conflict when another helm is changing the
        release, Unavailable when helm or the cluster fails otherwise.
        """
        return async_to_sync(self._install_or_upgrade)(spec)

    def uninstall(self, name: str, cluster: ClusterAccess) -> None:
        """Remove the release from its namespace; a release that does not exist is already removed."""
        async_to_sync(self._uninstall)(name, cluster)

    def release(self, name: str, cluster: ClusterAccess) -> ReleaseInfo | None:
        """The release's current revision, or None when there is no such release."""
        return async_to_sync(self._release)(name, cluster)

    def rollback(self, name: str, revision: int, cluster: ClusterAccess) -> ReleaseInfo:
        """`helm rollback` to an earlier revision, waiting for its objects as an upgrade does; returns the
        new revision (Helm records a rollback as a revision of its own, with the old one's chart and values).

        Raises NotFound when the release or that revision of it is gone (Helm keeps HISTORY_MAX);
        BadInput when the cluster refuses the older objects (a volume cannot shrink), Unavailable when
        helm fails otherwise, each after going back to the revision deployed before, as --atomic does
        for an upgrade; Conflict when another helm is changing the release; NoAnswer when the cluster
        does not answer.
        """
        return async_to_sync(self._rollback_to)(name, revision, cluster)

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

    def prepare(self) -> None:
        """Ask helm its version now (atomic_flag), not in front of a worker's first install."""
        self.atomic_flag()

    def atomic_flag(self) -> str:
        """helm v3 calls it --atomic; v4 renamed it --rollback-on-failure (asked once per service)."""
        if self._atomic_flag is None:
            version = pyhelm3.Command(executable=self.executable).client_version()
            self._atomic_flag = "--atomic" if version < semver.VersionInfo.parse("4.0.0") else "--rollback-on-failure"
        return self._atomic_flag

    async def _install_or_upgrade(self, spec: ReleaseSpec) -> ReleaseInfo:
        with self._command(spec.cluster) as helm:
            try:
                status = await helm.install_or_upgrade(
                    spec.name,
                    spec.chart,
                    spec.values,
                    repo=spec.repo or None,
                    version=spec.version or None,
                    namespace=spec.namespace,
                    create_namespace=True,
                    atomic=True,
                    atomic_arg=self.atomic_flag(),
                    timeout=f"{self.timeout_seconds}s",
                )
            except pyhelm3.errors.Error as exc:
                raise _translate(exc) from None
        return _release_info(spec.name, status)

    async def _uninstall(self, name: str, cluster: ClusterAccess) -> None:
        with self._command(cluster) as helm:
            try:
                await helm.uninstall(name, namespace=name, timeout=f"{self.timeout_seconds}s")
            except pyhelm3.errors.ReleaseNotFoundError:
                return
            except pyhelm3.errors.Error as exc:
                raise _translate(exc) from None

    async def _release(self, name: str, cluster: ClusterAccess) -> ReleaseInfo | None:
        with self._command(cluster) as helm:
            try:
                status = await helm.status(name, namespace=name)
            except pyhelm3.errors.ReleaseNotFoundError:
                return None
            except pyhelm3.errors.Error as exc:
                raise _translate(exc) from None
        return _release_info(name, status)

    async def _rollback(self, name: str, cluster: ClusterAccess) -> None:
        with self._command(cluster) as helm:
            try:
                await helm.rollback(name, None, namespace=name)
            except pyhelm3.errors.Error as exc:
                raise _translate(exc) from None

    async def _rollback_to(self, name: str, revision: int, cluster: ClusterAccess) -> ReleaseInfo:
        with self._command(cluster) as helm:
            kept = await self._history(helm, name)
            if revision not in kept:
                raise NotFound(
                    f"Revision {revision} of {name} is gone: Helm keeps the last {HISTORY_MAX} revisions of a "
                    f"release, and has {', '.join(map(str, sorted(kept)))}. Choose a later one, or change "
                    "the platform's options instead."
                )
            deployed = [number for number, status in kept.items() if status == "deployed"]
            try:
                await helm.rollback(name, revision, namespace=name, wait=True, timeout=f"{self.timeout_seconds}s")
            except pyhelm3.errors.Error as exc:
                error = _translate(exc)
                if deployed and not isinstance(error, Conflict | NoAnswer):
                    raise await self._undo_rollback(helm, name, max(kept), max(deployed), error) from None
                raise error from None
            try:
                status = await helm.status(name, namespace=name)
            except pyhelm3.errors.Error as exc:
                raise _translate(exc) from None
        return _release_info(name, status)

    async def _history(self, helm: pyhelm3.Command, name: str) -> dict[int, str]:
        """The release's kept revisions and their status ("deployed", "superseded", "failed", ...)."""
        try:
            entries = await helm.history(name, namespace=name)
        except pyhelm3.errors.ReleaseNotFoundError:
            raise NotFound(f"Release {name} is not on the cluster: there is nothing to roll back.") from None
        except pyhelm3.errors.Error as exc:
            raise _translate(exc) from None
        return {int(entry["revision"]): str(entry.get("status", "")) for entry in entries}

    async def _undo_rollback(
        self, helm: pyhelm3.Command, name: str, latest: int, deployed: int, error: Exception
    ) -> Exception:
        """Go back to the revision deployed before a refused rollback; return the error to raise, saying so.

        Helm leaves the objects it changed before the refusal as the older revision had them, and the
        release failed with no deployed revision. Not waited for: the objects are those that ran a moment
        ago, and the operation's time budget is spent.
        """
        try:
            if max(await self._history(helm, name)) == latest:
                return error  # helm recorded no rollback: nothing was changed
            await helm.rollback(name, deployed, namespace=name, timeout=f"{self.timeout_seconds}s")
        except (pyhelm3.errors.Error, ServiceError) as exc:
            detail = _translate(exc) if isinstance(exc, pyhelm3.errors.Error) else exc
            logger.warning("release=%s rollback not undone: %s", name, detail)
            return type(error)(f"{error}\nGoing back to revision {deployed} failed too: {detail}")
        return type(error)(f"{error}\nHelm went back to revision {deployed}: the release runs as it did before.")

    @contextmanager
    def _command(self, cluster: ClusterAccess) -> Iterator[pyhelm3.Command]:
        """A helm command bound to the cluster, through a private kubeconfig file for this call."""
        # Only the checked kubeconfig: helm would otherwise run its exec plugins and read its files.
        checked = kubeconfig.check(cluster.kubeconfig, cluster.context)
        if not Path(self.executable).is_file() and not shutil.which(self.executable):
            raise Unavailable(f"The helm executable {self.executable!r} was not found; set HELM_EXECUTABLE.")
        with tempfile.TemporaryDirectory(prefix="binderadmin-helm-") as folder:
            path = Path(folder) / "kubeconfig"
            path.touch(mode=0o600)
            path.write_text(checked.text)
            yield _Command(
                openapi_validation=self.openapi_validation,
                executable=self.executable,
                kubeconfig=path,
                kubecontext=checked.context,
                default_timeout=f"{self.timeout_seconds}s",
                history_max_revisions=HISTORY_MAX,
            )


class _Command(pyhelm3.Command):
    """pyhelm3's Command, whose installs and upgrades may leave out helm's client-side OpenAPI check
    (settings.HELM_OPENAPI_VALIDATION). pyhelm3 0.5.8's own `disable_validation` adds that flag to the
    command letter by letter, so it is added here."""

    def __init__(self, *, openapi_validation: bool, **kwargs):
        super().__init__(**kwargs)
        self.openapi_validation = openapi_validation

    async def run(self, command: list[str], input: bytes | None = None) -> bytes:
        if command[:1] == ["upgrade"] and not self.openapi_validation:
            command = [*command, "--disable-openapi-validation"]
        return await super().run(command, input)


def _release_info(name: str, status: dict) -> ReleaseInfo:
    info = status.get("info") or {}
    metadata = (status.get("chart") or {}).get("metadata") or {}
    return ReleaseInfo(
        name=name,
        namespace=status.get("namespace", name),
        revision=int(status.get("version", 0)),
        status=info.get("status", "unknown"),
        chart_version=metadata.get("version", ""),
        notes=info.get("notes", "") or "",
    )


def _translate(exc: "pyhelm3.errors.Error") -> Exception:
    """Turn a pyhelm3 error into ours; pyhelm3 classifies only some messages, so read the rest."""
    message = (exc.stderr or b"").decode(errors="replace").strip() or str(exc)
    lowered = message.lower()
    if "can not be less than" in lowered:
        return BadInput(f"The cluster refused to shrink a volume (a PersistentVolumeClaim never shrinks): {message}")
    if "can be resized" in lowered:
        return BadInput(
            f"The cluster cannot resize the registry's volume (its storage class does not allow it): {message}"
        )
    if isinstance(exc, pyhelm3.errors.FailedToRenderChartError | pyhelm3.errors.InvalidResourceError) or any(
        marker in lowered for marker in REFUSED
    ):
        return BadInput(f"Helm refused the chart or its values: {message}")
    if isinstance(exc, pyhelm3.errors.ChartNotFoundError) or "not found" in lowered:
        return NotFound(f"Helm could not find the chart: {message}")
    if IN_PROGRESS in lowered:
        return Conflict(f"Another Helm operation is changing this release: {message}")
    logger.warning("helm failed: %s", message)
    if any(marker in lowered for marker in UNREACHABLE):
        return NoAnswer(f"The cluster did not answer Helm: {message}")
    return Unavailable(f"Helm failed: {message}")


@cache
def get_helm() -> Helm:
    """The configured Helm service."""
    return HelmService(settings.HELM_EXECUTABLE, settings.HELM_TIMEOUT_SECONDS, settings.HELM_OPENAPI_VALIDATION)
