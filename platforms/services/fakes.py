"""In-memory stand-ins for the adapters, for fast unit tests (integration tests use the real ones)."""

from platforms.services.errors import ServiceError
from platforms.services.types import ClusterAccess, ServerVersion


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
