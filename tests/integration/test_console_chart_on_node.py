"""The console's own chart runs on the local stack's node: migrations, web and worker Ready, sign-in through the pod.

Needs the opt-in node (DEVSTACK_NODE=1, root; see the README's local stack). The console's image is
built like the node's others (`python -m devstack.images build binderadmin`, cached by recipe) and
imported into the node's containerd. PostgreSQL and Redis are this test's own, Debian's servers on the
host listening on the pods' bridge address, where the pods reach them as they reach Keycloak through
the host relay. An HTTP client with a cookie jar reaches the web Service through a loopback port forward
and signs in through Keycloak as alice; the console in the pod makes its token calls to Keycloak at the bridge address.
"""

import base64
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from cryptography.fernet import Fernet
from kubernetes import client, config

from devstack import config as devstack_config
from devstack import images, node, tools
from devstack.images import recipes
from devstack.node.render import GATEWAY, POD_CIDR, TAINT
from tests.integration import keycloak_admin
from tests.integration.http_browser import new_browser
from tests.integration.test_oidc_login import keycloak_form_action
from tests.integration.test_worker import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("DEVSTACK_NODE") != "1", reason="needs the local stack's node: run with DEVSTACK_NODE=1 (root)"
    ),
]
CHART = devstack_config.REPO_DIR / "charts" / "binderadmin"
CONSOLE_CLIENT = "binderadmin-console"


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


class LoopbackForwarder(socketserver.ThreadingTCPServer):
    """Copies connections to 127.0.0.1:<port> to an address, as `kubectl port-forward` would to a Service.

    The console's cookies are Secure, which browsers send over plain http to loopback only, and
    kube-proxy here serves NodePorts on the node's address, not on 127.0.0.1 (localhostNodePorts off).
    """

    daemon_threads = True

    def __init__(self, target: tuple[str, int]):
        self.target = target
        super().__init__(("127.0.0.1", 0), self.Copy)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    class Copy(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.create_connection(self.server.target, timeout=30) as upstream:
                back = threading.Thread(target=self.pipe, args=(upstream, self.request), daemon=True)
                back.start()
                self.pipe(self.request, upstream)
                back.join(timeout=30)

        @staticmethod
        def pipe(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def listening(address: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((address, port)) == 0


def timed(timings: dict[str, float], name: str, started: float) -> None:
    timings[name] = round(time.monotonic() - started, 1)
    print(f"console chart on the node: {name} {timings[name]} s", flush=True)


@pytest.fixture
def on_node(devstack):
    if "NODE_HELM_EXECUTABLE" not in devstack or not node.node_ready():
        pytest.skip("the local stack's node is not running Ready (python -m devstack up with DEVSTACK_NODE=1)")
    return devstack


@pytest.fixture
def postgresql(on_node):
    """A PostgreSQL server of this test's own on the bridge address.

    Yields the console's DATABASE_URL and a function that runs one query there and returns its output.
    """
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins or not shutil.which("runuser"):
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    bin_dir = Path(bins[-1]).parent
    data = Path(tempfile.mkdtemp(prefix="console-chart-pg-"))
    shutil.chown(data, "postgres", "postgres")
    password = secrets.token_hex(16)
    (data / "pw").write_text(password)
    shutil.chown(data / "pw", "postgres", "postgres")
    port = free_port(GATEWAY)

    def as_postgres(*argv: str) -> str:
        result = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-1000:]
        return result.stdout

    as_postgres(
        str(bin_dir / "initdb"),
        f"--pgdata={data / 'db'}",
        "--username=postgres",
        f"--pwfile={data / 'pw'}",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
    )
    # initdb's pg_hba.conf lets in loopback only; the pods come from the bridge's subnet.
    with open(data / "db" / "pg_hba.conf", "a") as hba:
        hba.write(f"host all all {POD_CIDR} scram-sha-256\n")
    options = f"-c listen_addresses={GATEWAY} -p {port} -k {data} -c fsync=off"
    as_postgres(
        str(bin_dir / "pg_ctl"), "start", "-w", f"--pgdata={data / 'db'}", f"--log={data / 'log'}", "-o", options
    )
    try:
        as_postgres(str(bin_dir / "createdb"), f"--host={data}", f"--port={port}", "binderadmin")
        psql = (str(bin_dir / "psql"), f"--host={data}", f"--port={port}", "--dbname=binderadmin")
        database = (*psql, "--tuples-only", "--no-align")
        yield (
            f"postgres://postgres:{password}@{GATEWAY}:{port}/binderadmin",
            lambda query: as_postgres(*database, f"--command={query}").strip(),
        )
    finally:
        as_postgres(str(bin_dir / "pg_ctl"), "stop", "-m", "fast", f"--pgdata={data / 'db'}")
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def redis_url(on_node):
    """A redis-server of this test's own on the bridge address, with a password; yields the console's REDIS_URL."""
    server = shutil.which("redis-server")
    if not server:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port, password = free_port(GATEWAY), secrets.token_hex(16)
    argv = [
        server,
        "--bind",
        GATEWAY,
        "--port",
        str(port),
        "--requirepass",
        password,
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: listening(GATEWAY, port), 20, "redis-server to listen")
        yield f"redis://:{password}@{GATEWAY}:{port}/0"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


@pytest.fixture
def core(kubeconfig_text) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text)))


def import_console_image(timings: dict[str, float]) -> str:
    """Build the console's image (cached by recipe) and import it into the node's containerd, as `up` does."""
    started = time.monotonic()
    archive = images.archive(recipes.CONSOLE.name)
    timed(timings, "image build (0 when cached)", started)
    started = time.monotonic()
    ctr = ["ctr", f"--address={node.LAYOUT.socket}", "--namespace=k8s.io"]
    result = subprocess.run([*ctr, "images", "import", str(archive)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-500:]
    timed(timings, "image import", started)
    return recipes.CONSOLE.ref


def console_values(on_node: dict[str, str], tag: str) -> dict:
    return {
        "image": {"tag": tag, "pullPolicy": "Never"},
        "config": {
            "hosts": ["127.0.0.1"],
            # Plain http on loopback: no TLS proxy in front, and no redirect to https.
            "behindTlsProxy": False,
            "keycloakUrl": devstack_config.KEYCLOAK_URL,
            "keycloakBackchannelUrl": on_node["KEYCLOAK_URL_FROM_CLUSTERS"],
            "appChartRepoUrl": f"http://{GATEWAY}:{devstack_config.PORTS.chart_repo}",
            "env": {"DJANGO_SECURE_SSL_REDIRECT": "false"},
        },
        "redis": {"enabled": True},
        "web": {"replicas": 1, "workers": 2},
        "worker": {"processes": 1, "terminationGracePeriodSeconds": 30},
        "tolerations": [{**TAINT, "operator": "Equal"}],
    }


def console_secret(namespace: str, database_url: str, redis_url: str) -> client.V1Secret:
    settings = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DATABASE_URL": database_url,
        "OIDC_RP_CLIENT_SECRET": devstack_config.CONSOLE_CLIENT_SECRET,
        "KEYCLOAK_ADMIN_CLIENT_SECRET": devstack_config.ADMIN_CLIENT_SECRET,
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "REDIS_URL": redis_url,
    }
    data = {name: base64.b64encode(value.encode()).decode() for name, value in settings.items()}
    return client.V1Secret(metadata=client.V1ObjectMeta(name="binderadmin", namespace=namespace), data=data)


class RedirectUris:
    """Lets the console's Keycloak client send browsers back to one more address, and takes it away again."""

    def __init__(self, pattern: str):
        self.api = keycloak_admin.admin_session()
        clients = f"{keycloak_admin.ADMIN_API}/clients"
        found = self.api.get(clients, params={"clientId": CONSOLE_CLIENT}, timeout=10).json()
        self.url = f"{clients}/{found[0]['id']}"
        self.pattern = pattern

    def _change(self, change) -> None:
        representation = self.api.get(self.url, timeout=10).json()
        representation["redirectUris"] = change(representation["redirectUris"])
        self.api.put(self.url, json=representation, timeout=10).raise_for_status()

    def add(self) -> None:
        self._change(lambda uris: [*uris, self.pattern])

    def remove(self) -> None:
        self._change(lambda uris: [uri for uri in uris if uri != self.pattern])


def test_console_chart_installs_on_the_node_and_alice_signs_in_through_the_pod(
    on_node, postgresql, redis_url, core, kubeconfig_text, tmp_path
):
    database_url, sql = postgresql
    timings: dict[str, float] = {}
    ref = import_console_image(timings)
    namespace = release = f"binderadmin-{uuid.uuid4().hex[:6]}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeconfig_text)
    values = tmp_path / "values.yaml"
    values.write_text(json.dumps(console_values(on_node, ref.rsplit(":", 1)[1])))
    helm = [str(tools.helm()), f"--kubeconfig={kubeconfig}", f"--namespace={namespace}"]
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    redirect_uris = forwarder = None
    try:
        core.create_namespaced_secret(namespace, console_secret(namespace, database_url, redis_url))
        started = time.monotonic()
        install = subprocess.run(
            [*helm, "install", release, str(CHART), f"--values={values}", "--wait", "--timeout=10m"],
            capture_output=True,
            text=True,
            timeout=660,
        )
        assert install.returncode == 0, install.stderr[-2000:] + describe_pods(core, namespace)
        timed(timings, "install to Ready (migrations, web, worker)", started)

        pods = core.list_namespaced_pod(namespace).items
        ready = {
            pod.metadata.labels.get("app.kubernetes.io/component"): all(c.ready for c in pod.status.container_statuses)
            for pod in pods
            if pod.status.phase == "Running"
        }
        assert ready == {"web": True, "worker": True}, describe_pods(core, namespace)
        assert all(pod.spec.node_name == node.NODE_NAME for pod in pods)
        # The migration Job ran before the rest (a pre-install hook, deleted once it succeeded).
        assert int(sql("SELECT count(*) FROM django_migrations WHERE app = 'platforms'")) > 0

        service = core.read_namespaced_service(release, namespace)
        forwarder = LoopbackForwarder((service.spec.cluster_ip, service.spec.ports[0].port))
        base_url = f"http://127.0.0.1:{forwarder.server_address[1]}"
        health = requests.get(f"{base_url}/health/", timeout=10)
        assert health.status_code == 200, health.text

        redirect_uris = RedirectUris(f"{base_url}/*")
        redirect_uris.add()
        started = time.monotonic()
        browser = new_browser()
        login_page = browser.get(f"{base_url}/", timeout=30)
        assert login_page.url.startswith(f"{devstack_config.KEYCLOAK_URL}/realms/{devstack_config.REALM}/")
        landing = browser.post(
            keycloak_form_action(login_page.text), data={"username": "alice", "password": "alice-password"}, timeout=60
        )
        timed(timings, "sign-in through the pod", started)
        assert landing.url == f"{base_url}/", landing.text[-1000:]
        assert 'data-testid="username">Alice Admin<' in landing.text
        assert "<h1>Platforms</h1>" in landing.text
        assert "No BinderHub platforms yet. Launch one to get started." in landing.text
        assert sql("SELECT is_staff FROM auth_user WHERE username = 'alice'") == "t"
    finally:
        if redirect_uris:
            redirect_uris.remove()
        if forwarder:
            forwarder.shutdown()
            forwarder.server_close()
        subprocess.run([*helm, "uninstall", release, "--wait", "--timeout=2m"], capture_output=True, timeout=180)
        core.delete_namespace(namespace)
        print(f"console chart on the node: {timings}", flush=True)


def describe_pods(core: client.CoreV1Api, namespace: str) -> str:
    """What each pod of the release is doing, for an assertion's message."""
    lines = []
    for pod in core.list_namespaced_pod(namespace).items:
        statuses = [(c.name, c.ready, c.state.to_dict()) for c in pod.status.container_statuses or []]
        lines.append(f"\n{pod.metadata.name} {pod.status.phase} {statuses}")
    return "".join(lines)
