"""In-memory stand-ins for the adapters, for fast unit tests (integration tests use the real ones)."""

from platforms.services.errors import ServiceError
from platforms.services.types import ClusterAccess, ReleaseInfo, ReleaseSpec, ServerVersion, ServiceLinkInfo


class FakeKube:
    """Answers server_version with a fixed version, or raises the error it was given."""

    def __init__(self, version: str = "v1.34.4", error: ServiceError | None = None):
        self.version = version
        self.error = error
        self.calls: list[ClusterAccess] = []

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


class FakeDeployKube(FakeKube):
    """FakeKube plus the calls the deploy engine makes."""

    def __init__(self):
        super().__init__()
        self.cluster = FakeCluster()

    def service_links(self, access: ClusterAccess, namespace: str, exposure: str) -> list[ServiceLinkInfo]:
        if self.error:
            raise self.error
        return list(self.cluster.links.get(namespace, []))

    def delete_namespace(self, access: ClusterAccess, name: str) -> str:
        if name in self.cluster.stuck_namespaces:
            self.cluster.namespaces[name] = "Terminating"
        else:
            self.cluster.namespaces.pop(name, None)
        return self.namespace_phase(access, name)

    def namespace_phase(self, access: ClusterAccess, name: str) -> str:
        return self.cluster.namespaces.get(name, "Gone")


class FakeHelm:
    """Records releases in memory; `error` makes the next calls fail."""

    def __init__(self):
        self.releases: dict[str, ReleaseInfo] = {}
        self.specs: list[ReleaseSpec] = []
        self.error: ServiceError | None = None

    def install_or_upgrade(self, spec: ReleaseSpec) -> ReleaseInfo:
        self.specs.append(spec)
        if self.error:
            raise self.error
        previous = self.releases.get(spec.name)
        info = ReleaseInfo(
            name=spec.name,
            namespace=spec.namespace,
            revision=previous.revision + 1 if previous else 1,
            status="deployed",
            chart_version=spec.version,
        )
        self.releases[spec.name] = info
        return info

    def uninstall(self, name: str, cluster: ClusterAccess) -> None:
        if self.error:
            raise self.error
        self.releases.pop(name, None)

    def release(self, name: str, cluster: ClusterAccess) -> ReleaseInfo | None:
        return self.releases.get(name)

    def recover_interrupted(self, name: str, cluster: ClusterAccess) -> str:
        return ""
