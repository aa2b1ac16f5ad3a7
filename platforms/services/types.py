"""Frozen dataclasses that adapters return, so no library object leaks into views or tasks."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TokenSet:
    """Tokens that Keycloak issued for a signed-in session."""

    access_token: str
    refresh_token: str
    id_token: str = ""


@dataclass(frozen=True)
class ServerVersion:
    """What a Kubernetes API server says about itself at /version."""

    git_version: str
    major: str
    minor: str
    platform: str = ""


@dataclass(frozen=True)
class KubeconfigContexts:
    """The contexts a kubeconfig offers, and which one it marks current (or "")."""

    names: list[str]
    current: str


@dataclass(frozen=True)
class ClusterAccess:
    """How to reach one Kubernetes cluster: a kubeconfig document and the context to use."""

    kubeconfig: str
    context: str = ""


@dataclass(frozen=True)
class ReleaseSpec:
    """One Helm release to install or upgrade, with its complete values."""

    name: str
    chart: str
    cluster: ClusterAccess
    version: str = ""
    repo: str = ""
    values: dict = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        """One namespace per release, named like it."""
        return self.name


@dataclass(frozen=True)
class ReleaseInfo:
    """What Helm reports about a release after a change."""

    name: str
    namespace: str
    revision: int
    status: str
    chart_version: str = ""
    notes: str = ""


@dataclass(frozen=True)
class ServiceLinkInfo:
    """A platform service as the cluster exposes it (a Zenith Reservation or an Ingress)."""

    name: str
    label: str
    icon: str
    url: str
    ready: bool
