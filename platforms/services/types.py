"""Frozen dataclasses that adapters return, so no library object leaks into views or tasks."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TokenSet:
    """Tokens that Keycloak issued for a signed-in session."""

    access_token: str
    refresh_token: str
    id_token: str = ""
    # The `groups` claim of the new tokens (full group paths); None when they carry no such claim.
    groups: tuple[str, ...] | None = None


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
    """A platform service as the cluster reports it (a Zenith Reservation or an Ingress).

    Untrusted: `host` is whatever the cluster says (platforms.service_addresses checks it).
    """

    name: str
    host: str
    ready: bool


@dataclass(frozen=True)
class DirectoryGroup:
    """A Keycloak group, by its id and full path (such as /platforms/demo/binderhub)."""

    id: str
    path: str


@dataclass(frozen=True)
class DirectoryUser:
    """A Keycloak user as the console shows it."""

    id: str
    username: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    enabled: bool = True

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


@dataclass(frozen=True)
class UserPage:
    """One page of users (group members or search results) and whether more follow."""

    users: tuple[DirectoryUser, ...]
    first: int
    size: int
    has_more: bool

    @property
    def last(self) -> int:
        """The 1-based position of the page's last user."""
        return self.first + len(self.users)

    @property
    def next_first(self) -> int | None:
        return self.first + self.size if self.has_more else None

    @property
    def previous_first(self) -> int | None:
        return max(self.first - self.size, 0) if self.first > 0 else None


@dataclass(frozen=True)
class OidcClient:
    """A confidential OpenID Connect client in the realm (one per platform)."""

    id: str
    client_id: str
    redirect_uris: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeCapacity:
    """One node's allocatable CPUs and memory, and whether new pods may land on it (Ready, not cordoned)."""

    name: str
    cpus: float
    memory_gb: float
    schedulable: bool


@dataclass(frozen=True)
class ClusterCapacity:
    """What a cluster has and what its pods already request, as read at one check."""

    nodes: tuple[NodeCapacity, ...]
    storage_classes: tuple[str, ...]
    default_storage_class: str
    requested_cpus: float
    requested_memory_gb: float


@dataclass(frozen=True)
class HubUsage:
    """Users with at least one server running or starting, and the servers that are running."""

    active_users: int
    servers: int
