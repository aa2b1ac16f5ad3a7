"""Pinned versions, loopback ports and folders of the local stack, in one place."""

import os
from dataclasses import dataclass
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
DEVSTACK_DIR = REPO_DIR / "devstack"

HELM_VERSION = "v3.19.0"
KUBERNETES_VERSION = "v1.34.4"  # k8s.io/kubernetes; staging modules pinned to v0.34.4 in kube/go.mod
ETCD_VERSION = "v3.6.4"  # the etcd server that Kubernetes v1.34.4's go.mod requires
COREDNS_VERSION = "v1.14.1"  # the opt-in node's cluster DNS; the newest that builds with Go 1.24
KEYCLOAK_VERSION = "26.5.6"
KEYCLOAK_MIN_JAVA = 21
MAVEN_CENTRAL = os.environ.get("DEVSTACK_MAVEN_URL", "https://repo1.maven.org/maven2").rstrip("/")

REALM = "binderadmin"
CONSOLE_CLIENT_ID = "binderadmin-console"
CONSOLE_CLIENT_SECRET = "dev-console-secret"
ADMIN_CLIENT_ID = "binderadmin-admin"
ADMIN_CLIENT_SECRET = "dev-admin-secret"
KEYCLOAK_ADMIN_USER = "admin"
KEYCLOAK_ADMIN_PASSWORD = "admin"
# The demo logins that the realm JSON creates and `make run` prints.
DEMO_USERS = (("alice", "alice-password", "console admin"), ("bob", "bob-password", "normal user"))


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Ports:
    etcd_client: int = _port("DEVSTACK_ETCD_PORT", 12379)
    etcd_peer: int = _port("DEVSTACK_ETCD_PEER_PORT", 12380)
    kube_apiserver: int = _port("DEVSTACK_KUBE_PORT", 16443)
    keycloak: int = _port("DEVSTACK_KEYCLOAK_PORT", 18080)
    keycloak_management: int = _port("DEVSTACK_KEYCLOAK_MANAGEMENT_PORT", 18090)
    chart_repo: int = _port("DEVSTACK_CHART_REPO_PORT", 18081)
    redis: int = _port("DEVSTACK_REDIS_PORT", 16379)
    # Zenith's proxy, run by `python -m devstack zenith --watch` (devstack/zenith_proxy.py).
    zenith_proxy: int = _port("DEVSTACK_ZENITH_PROXY_PORT", 18082)


PORTS = Ports()
HOST = "127.0.0.1"

# Built and downloaded parts are kept per version, shared by every checkout on the machine;
# the running stack's state, pids and logs live under run/ in the same folder.
CACHE_DIR = Path(os.environ.get("DEVSTACK_CACHE", Path.home() / ".cache" / "binderadmin-devstack"))
BIN_DIR = CACHE_DIR / "bin"
RUN_DIR = CACHE_DIR / "run"
LOG_DIR = RUN_DIR / "logs"
PID_DIR = RUN_DIR / "pids"
KUBE_DIR = RUN_DIR / "kube"
KUBECONFIG = RUN_DIR / "kubeconfig"
ENV_FILE = RUN_DIR / "env"

KEYCLOAK_URL = f"http://{HOST}:{PORTS.keycloak}"
KUBE_URL = f"https://{HOST}:{PORTS.kube_apiserver}"
CHART_REPO_URL = f"http://{HOST}:{PORTS.chart_repo}"
# Not in the console's environment: the console keeps the database as its queue unless REDIS_URL is
# set; the worker tests also run with this Redis as the broker.
REDIS_URL = f"redis://{HOST}:{PORTS.redis}/0"

# The application chart and the versions the local chart repository publishes of it: two releases,
# so that install and upgrade can both be exercised, and one pre-release, which the console hides
# unless asked to show pre-releases.
APP_CHART_NAME = "binderhub-platform"
APP_CHART_DIR = REPO_DIR / "charts" / APP_CHART_NAME
APP_CHART_VERSIONS = ("0.1.0", "0.2.0", "0.3.0-rc.1")
CHART_REPO_DIR = RUN_DIR / "charts"

# Where the `zenith` command puts the services it exposes: `<service>-<platform>.zenith.localhost`.
# Names under .localhost stay on this machine (RFC 6761), so a demo link can never reach someone else.
ZENITH_BASE_DOMAIN = "zenith.localhost"
