"""In-memory test doubles of the service adapters, for fast unit tests (integration tests use the real ones)."""

import uuid
from collections.abc import Sequence

from platforms.services.errors import NoAnswer, NotFound, ServiceError
from platforms.services.helm import HISTORY_MAX
from platforms.services.interfaces import Directory, Helm, HubReader, Kube
from platforms.services.keycloak import missing_group_message
from platforms.services.types import (
    ClusterAccess,
    ClusterCapacity,
    DirectoryGroup,
    DirectoryUser,
    HubUsage,
    NodeCapacity,
    OidcClient,
    ReleaseInfo,
    ReleaseSpec,
    ServerVersion,
    ServiceLinkInfo,
    UserPage,
)


class FakeKube:
    """Answers server_version and capacity (of Kube) with fixed values, or raises the error it was given."""

    def __init__(self, version: str = "v1.34.4", error: ServiceError | None = None):
        self.version = version
        self.error = error
        self.calls: list[ClusterAccess] = []
        # What capacity() answers: one 8-CPU, 32 GB node and a default storage class; or an error.
        self.found_capacity: ClusterCapacity | ServiceError = ClusterCapacity(
            nodes=(NodeCapacity("node-1", 8.0, 32.0, True),),
            storage_classes=("standard",),
            default_storage_class="standard",
            requested_cpus=1.0,
            requested_memory_gb=2.0,
        )

    def capacity(self, access: ClusterAccess) -> ClusterCapacity:
        self.calls.append(access)
        if isinstance(self.found_capacity, ServiceError):
            raise self.found_capacity
        return self.found_capacity

    def server_version(self, access: ClusterAccess) -> ServerVersion:
        self.calls.append(access)
        if self.error:
            raise self.error
        major, minor = self.version.lstrip("v").split(".")[:2]
        return ServerVersion(git_version=self.version, major=major, minor=minor)


class FakeCluster:
    """Service links and namespaces of one pretend cluster, for FakeKube."""

    def __init__(self):
        self.links: dict[str, list[ServiceLinkInfo]] = {}
        self.namespaces: dict[str, str] = {}
        self.stuck_namespaces: set[str] = set()
        self.node_ports: set[int] = set()
        # Helm's releases, shared with a FakeHelm made for this cluster (FakeHelm(cluster)).
        self.releases: dict[str, ReleaseInfo] = {}


class FakeDeployKube(FakeKube, Kube):
    """FakeKube plus the calls the deploy engine makes."""

    def __init__(self):
        super().__init__()
        self.cluster = FakeCluster()
        self.listings: list[str] = []

    def service_links(self, access: ClusterAccess, namespace: str, exposure: str) -> list[ServiceLinkInfo]:
        if self.error:
            raise self.error
        return list(self.cluster.links.get(namespace, []))

    def node_ports(self, access: ClusterAccess) -> set[int]:
        if self.error:
            raise self.error
        return set(self.cluster.node_ports)

    def helm_releases(self, access: ClusterAccess) -> dict[str, ReleaseInfo]:
        self.listings.append("helm_releases")
        if self.error:
            raise self.error
        return dict(self.cluster.releases)

    def service_links_by_namespace(self, access: ClusterAccess, exposure: str) -> dict[str, list[ServiceLinkInfo]]:
        self.listings.append("service_links_by_namespace")
        if self.error:
            raise self.error
        return {namespace: list(links) for namespace, links in self.cluster.links.items()}

    def delete_namespace(self, access: ClusterAccess, name: str) -> str:
        if name in self.cluster.stuck_namespaces:
            self.cluster.namespaces[name] = "Terminating"
        else:
            self.cluster.namespaces.pop(name, None)
        return self.namespace_phase(access, name)

    def namespace_phase(self, access: ClusterAccess, name: str) -> str:
        return self.cluster.namespaces.get(name, "Gone")


class FakeHelm(Helm):
    """Records releases in memory; `error` makes the next calls fail."""

    def __init__(self, cluster: FakeCluster | None = None):
        self.releases: dict[str, ReleaseInfo] = cluster.releases if cluster else {}
        self.specs: list[ReleaseSpec] = []
        self.error: ServiceError | None = None
        # Each release's kept revisions -> the chart version it deployed, at most HISTORY_MAX, as helm keeps.
        self.history: dict[str, dict[int, str]] = {}
        self.rollbacks: list[tuple[str, int]] = []
        self.prepared = False

    def prepare(self) -> None:
        self.prepared = True

    def install_or_upgrade(self, spec: ReleaseSpec) -> ReleaseInfo:
        self.specs.append(spec)
        if self.error:
            raise self.error
        return self._record(spec.name, spec.namespace, spec.version)

    def _record(self, name: str, namespace: str, chart_version: str) -> ReleaseInfo:
        previous = self.releases.get(name)
        info = ReleaseInfo(
            name=name,
            namespace=namespace,
            revision=previous.revision + 1 if previous else 1,
            status="deployed",
            chart_version=chart_version,
        )
        self.releases[name] = info
        kept = self.history.setdefault(name, {})
        kept[info.revision] = chart_version
        for old in sorted(kept)[:-HISTORY_MAX]:
            del kept[old]
        return info

    def rollback(self, name: str, revision: int, cluster: ClusterAccess) -> ReleaseInfo:
        self.rollbacks.append((name, revision))
        if name not in self.releases:
            raise NotFound(f"Release {name} is not on the cluster: there is nothing to roll back.")
        if revision not in self.history.get(name, {}):
            raise NotFound(f"Revision {revision} of {name} is gone: Helm keeps the last {HISTORY_MAX} revisions.")
        if self.error:
            raise self.error
        return self._record(name, self.releases[name].namespace, self.history[name][revision])

    def uninstall(self, name: str, cluster: ClusterAccess) -> None:
        if self.error:
            raise self.error
        self.releases.pop(name, None)
        self.history.pop(name, None)

    def release(self, name: str, cluster: ClusterAccess) -> ReleaseInfo | None:
        return self.releases.get(name)

    def recover_interrupted(self, name: str, cluster: ClusterAccess) -> str:
        return ""


class FakeDirectory(Directory):
    """Keycloak's groups, users and clients in memory, with the GroupDirectory's verbs and errors.

    `calls` counts the admin API calls the real directory would make for each verb; `error`
    makes every call fail (Keycloak down); `groups` maps path -> member ids.
    """

    def __init__(self, groups: tuple[str, ...] = ("/admins", "/platform-users", "/platforms")):
        self.groups: dict[str, set[str]] = {path: set() for path in groups}
        self.group_ids: dict[str, str] = {path: uuid.uuid4().hex for path in groups}
        self.users: dict[str, DirectoryUser] = {}
        self.clients: dict[str, dict] = {}
        self.calls: list[str] = []
        self.error: ServiceError | None = None

    # Arranging, for tests.
    def add_user(self, username: str, groups: tuple[str, ...] = (), **fields) -> DirectoryUser:
        user = DirectoryUser(id=str(uuid.uuid4()), username=username, email=f"{username}@example.org", **fields)
        self.users[user.id] = user
        for path in groups:
            self._ensure(path)
            self.groups[path].add(user.id)
        return user

    def delete_user(self, user_id: str) -> None:
        """Delete a user as someone would in Keycloak's own console (memberships go with them)."""
        del self.users[user_id]
        for members in self.groups.values():
            members.discard(user_id)

    def _call(self, verb: str) -> None:
        self.calls.append(verb)
        if self.error:
            raise self.error

    def _ensure(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        if parent:
            self._ensure(parent)
        if path not in self.groups:
            self.groups[path] = set()
            self.group_ids[path] = uuid.uuid4().hex

    def _group(self, path: str) -> DirectoryGroup | None:
        return DirectoryGroup(id=self.group_ids[path], path=path) if path in self.groups else None

    def find_group(self, path: str) -> DirectoryGroup | None:
        self._call("find_group")
        return self._group(path)

    def ensure_groups(self, paths: Sequence[str], likely_new: bool = False) -> list[DirectoryGroup]:
        for path in paths:
            if not likely_new:
                self._call("find_group")
            if path not in self.groups:
                self._call("create_group")
                self._ensure(path)
            elif likely_new:
                self._call("create_group")  # refused: it exists
                self._call("find_group")
        return [self._group(path) for path in paths]

    def remove_group(self, path: str) -> bool:
        self._call("find_group")
        if path not in self.groups:
            return False
        self._call("delete_group")
        for other in [p for p in self.groups if p == path or p.startswith(path + "/")]:
            del self.groups[other]
            del self.group_ids[other]
        return True

    def members(self, path: str, first: int = 0, size: int = 50) -> UserPage:
        self._call("find_group")
        if path not in self.groups:
            raise NotFound(missing_group_message(path))
        self._call("group_members")
        members = sorted((self.users[i] for i in self.groups[path]), key=lambda u: u.username)
        return UserPage(tuple(members[first : first + size]), first, size, len(members) > first + size)

    def search_users(self, text: str, first: int = 0, size: int = 20) -> UserPage:
        self._call("search_users")
        words = text.replace("*", " ").lower().split()

        def matches(user: DirectoryUser) -> bool:
            fields = [value.lower() for value in (user.username, user.email, user.first_name, user.last_name)]
            return all(any(word in value for value in fields) for word in words)

        found = sorted(filter(matches, self.users.values()), key=lambda u: u.username)
        return UserPage(tuple(found[first : first + size]), first, size, len(found) > first + size)

    def get_user(self, user_id: str) -> DirectoryUser:
        self._call("get_user")
        if user_id not in self.users:
            raise NotFound("That user no longer exists in Keycloak (deleted meanwhile?).")
        return self.users[user_id]

    def find_user(self, username: str) -> DirectoryUser | None:
        self._call("find_user")
        return next((u for u in self.users.values() if u.username == username), None)

    def user_group_paths(self, user_id: str) -> frozenset[str]:
        self._call("user_groups")
        if user_id not in self.users:
            raise NotFound("That user no longer exists in Keycloak (deleted meanwhile?).")
        return frozenset(path for path, members in self.groups.items() if user_id in members)

    def add_member(self, path: str, user_id: str) -> DirectoryUser:
        return self._change(path, user_id, set.add)

    def remove_member(self, path: str, user_id: str) -> DirectoryUser:
        return self._change(path, user_id, set.discard)

    def _change(self, path: str, user_id: str, change) -> DirectoryUser:
        self._call("find_group")
        if path not in self.groups:
            raise NotFound(missing_group_message(path))
        user = self.get_user(user_id)
        self._call("change_membership")
        change(self.groups[path], user_id)
        return user

    def ensure_client(
        self, client_id: str, name: str, secret: str, redirect_uris: list[str], likely_new: bool = False
    ) -> OidcClient:
        if likely_new:
            self._call("create_client")
        if client_id in self.clients or not likely_new:
            self._call("find_client")
            self._call("update_client" if client_id in self.clients else "create_client")
        existing = self.clients.get(client_id, {"id": uuid.uuid4().hex})
        self.clients[client_id] = {**existing, "name": name, "secret": secret, "redirect_uris": list(redirect_uris)}
        return OidcClient(id=existing["id"], client_id=client_id, redirect_uris=tuple(redirect_uris))

    def remove_client(self, client_id: str) -> bool:
        self._call("find_client")
        if client_id not in self.clients:
            return False
        self._call("delete_client")
        del self.clients[client_id]
        return True

    def paths_below(self, path: str, leaf_names: tuple[str, ...]) -> frozenset[str] | None:
        self._call("find_group")
        if path not in self.groups:
            return None
        self._call("list_children")
        for _name in leaf_names:
            self._call("search_groups")
        depth = path.count("/") + 1
        below = [p for p in self.groups if p.startswith(f"{path}/")]
        return frozenset(p for p in below if p.count("/") == depth or p.rpartition("/")[2] in leaf_names)

    def client_ids(self, prefix: str) -> frozenset[str]:
        self._call("list_clients")
        return frozenset(client_id for client_id in self.clients if client_id.startswith(prefix))


class FakeHubReader(HubReader):
    """Answers each hub URL with the usage or the error it was given; records every (url, token) asked."""

    def __init__(self, answers: dict | None = None):
        self.answers: dict = answers or {}
        self.unknown = NoAnswer("hub not reachable: the connection failed")
        self.calls: list[tuple[str, str]] = []

    def read(self, hub_url: str, token: str) -> HubUsage:
        self.calls.append((hub_url, token))
        answer = self.answers.get(hub_url, self.unknown)
        if isinstance(answer, Exception):
            raise answer
        return answer
