"""What each adapter promises: the typing.Protocol its real class and its test double both implement.

The getters (get_helm, get_kube, get_directory, get_hub_reader, get_session_checker) return these
types, so callers depend on the promise, not on the class settings chose.
"""

from collections.abc import Sequence
from typing import Protocol

from platforms.services.types import (
    ClusterAccess,
    ClusterCapacity,
    DirectoryGroup,
    DirectoryUser,
    HubUsage,
    OidcClient,
    ReleaseInfo,
    ReleaseSpec,
    ServerVersion,
    ServiceLinkInfo,
    TokenSet,
    UserPage,
)


class Helm(Protocol):
    """Helm releases on a cluster (platforms.services.helm.HelmService)."""

    def prepare(self) -> None:
        """Learn now, once per process, what the first install would otherwise wait to learn."""

    def install_or_upgrade(self, spec: ReleaseSpec) -> ReleaseInfo:
        """`helm upgrade --install` with the complete values, atomic so a failed upgrade rolls back."""

    def uninstall(self, name: str, cluster: ClusterAccess) -> None:
        """Remove the release from its namespace; a release that does not exist is already removed."""

    def release(self, name: str, cluster: ClusterAccess) -> ReleaseInfo | None:
        """The release's current revision, or None when there is no such release."""

    def rollback(self, name: str, revision: int, cluster: ClusterAccess) -> ReleaseInfo:
        """`helm rollback` to an earlier revision (refused and undone as an atomic upgrade); the new revision."""

    def recover_interrupted(self, name: str, cluster: ClusterAccess) -> str:
        """Clear a release left pending by a killed helm (which blocks every later upgrade)."""


class Kube(Protocol):
    """What the console reads and deletes through the Kubernetes API (platforms.services.kube.KubeService)."""

    def server_version(self, access: ClusterAccess) -> ServerVersion:
        """What the API server reports at /version."""

    def service_links(self, access: ClusterAccess, namespace: str, exposure: str) -> list[ServiceLinkInfo]:
        """The platform's services as Zenith Reservations (exposure "zenith") or Ingresses report them."""

    def capacity(self, access: ClusterAccess) -> ClusterCapacity:
        """The cluster's nodes, storage classes and what its pods request."""

    def node_ports(self, access: ClusterAccess) -> set[int]:
        """The NodePorts the cluster's Services use, in every namespace (one listing)."""

    def helm_releases(self, access: ClusterAccess) -> dict[str, ReleaseInfo]:
        """Every Helm release on the cluster whose namespace is named like it: name -> latest revision."""

    def service_links_by_namespace(self, access: ClusterAccess, exposure: str) -> dict[str, list[ServiceLinkInfo]]:
        """The services of every platform on the cluster, by namespace, in one request."""

    def delete_namespace(self, access: ClusterAccess, name: str) -> str:
        """Ask for the namespace to be deleted; return its phase afterwards ("Gone", "Terminating"...)."""

    def namespace_phase(self, access: ClusterAccess, name: str) -> str:
        """The namespace's phase ("Active", "Terminating"), or "Gone" when it does not exist."""


class Directory(Protocol):
    """Keycloak's groups, users and OIDC clients (platforms.services.keycloak.GroupDirectory)."""

    def find_group(self, path: str) -> DirectoryGroup | None:
        """The group at this full path, or None when there is none. Raises Unavailable."""

    def ensure_groups(self, paths: Sequence[str], likely_new: bool = False) -> list[DirectoryGroup]:
        """The groups at these paths, in order, each created (with its missing parents) if needed;
        `likely_new` creates first and looks only if they exist. Raises Unavailable."""

    def remove_group(self, path: str) -> bool:
        """Delete the group and its subgroups; False when it was already gone. Raises Unavailable."""

    def members(self, path: str, first: int = 0, size: int = 50) -> UserPage:
        """One page of the group's direct members."""

    def search_users(self, text: str, first: int = 0, size: int = 20) -> UserPage:
        """One page of users whose username, email, first or last name contains the text."""

    def get_user(self, user_id: str) -> DirectoryUser:
        """The user with this id. Raises NotFound when there is none, Unavailable."""

    def find_user(self, username: str) -> DirectoryUser | None:
        """The user with exactly this username, or None. Raises Unavailable."""

    def user_group_paths(self, user_id: str) -> frozenset[str]:
        """Full paths of the groups the user is a direct member of."""

    def add_member(self, path: str, user_id: str) -> DirectoryUser:
        """Make the user a member of the group (a no-op if they are already); return the user."""

    def remove_member(self, path: str, user_id: str) -> DirectoryUser:
        """End the user's membership of the group (a no-op if they were not a member); return the user."""

    def ensure_client(
        self, client_id: str, name: str, secret: str, redirect_uris: list[str], likely_new: bool = False
    ) -> OidcClient:
        """A confidential client with exactly this secret and these redirect URIs (created or updated);
        `likely_new` creates first and looks only if it exists."""

    def remove_client(self, client_id: str) -> bool:
        """Delete the client; False when it was already gone. Raises Unavailable."""

    def paths_below(self, path: str, leaf_names: tuple[str, ...]) -> frozenset[str] | None:
        """Full paths of the group's children and of the groups named `leaf_names` below them."""

    def client_ids(self, prefix: str) -> frozenset[str]:
        """The clientIds that start with `prefix`. Raises Unavailable."""


class HubReader(Protocol):
    """A platform's JupyterHub usage (platforms.services.jupyterhub.HubUsageReader)."""

    def read(self, hub_url: str, token: str) -> HubUsage:
        """The usage of the hub at `hub_url` (its public address), asked with the service token `token`."""


class SessionRefresher(Protocol):
    """Keycloak's answer to a session's refresh token (platforms.services.oidc.SessionChecker)."""

    def refresh(self, refresh_token: str) -> TokenSet:
        """Exchange the refresh token for fresh tokens."""
