"""Brings the local stack up and down on loopback: etcd, kube-apiserver, Keycloak, a chart repository and helpers."""

import base64
import shutil
import socket
import ssl
import sys
import time
from pathlib import Path

import yaml

from devstack import certs, chart_repo, config, crds, helm_without_node, node, procs, service_range, tools, volumes

PROCESSES = ("etcd", "kube-apiserver", "kube-controller-manager", "keycloak", chart_repo.NAME, volumes.NAME, "redis")
# The controllers a real cluster runs for what the application chart creates, where they work without
# a node: namespaces that finish deleting, owned objects that go with their owner, and the status of
# DaemonSets and Deployments, which `helm --wait` reads (with no node a DaemonSet wants no pods and is
# complete). No scheduler or kubelet runs, so a pod would stay Pending for ever: helm-without-node
# pauses the Deployments (devstack/helm_without_node.py), and the replicaset controller has nothing to do
# unless someone starts a Deployment by hand.
CONTROLLERS = ",".join(
    (
        "namespace-controller",
        "garbage-collector-controller",
        "daemonset-controller",
        "deployment-controller",
        "replicaset-controller",
    )
)


# With the opt-in node (DEVSTACK_NODE=1) pods run, and they need what a real control plane gives them:
# Services' endpoints (kube-proxy and CoreDNS read EndpointSlices), StatefulSets, each namespace's
# default ServiceAccount with its token and the kube-root-ca.crt ConfigMap that projected tokens mount,
# the removal of the node's not-ready taint once it is Ready, Jobs (charts' hooks) and the collection of
# finished pods.
NODE_CONTROLLERS = ",".join(
    (
        *CONTROLLERS.split(","),
        "endpoints-controller",
        "endpointslice-controller",
        "endpointslice-mirroring-controller",
        "statefulset-controller",
        "job-controller",
        "serviceaccount-controller",
        "serviceaccount-token-controller",
        "root-ca-certificate-publisher-controller",
        "pod-garbage-collector-controller",
        "node-lifecycle-controller",
        "taint-eviction-controller",
        # Claims and volumes are real with the node (devstack/volumes.py makes hostPath volumes): a
        # deleted one goes once no pod uses it.
        "persistentvolumeclaim-protection-controller",
        "persistentvolume-protection-controller",
    )
)


def _kube_ssl() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(config.KUBE_DIR / "ca.crt"))


def kube_ready() -> bool:
    token = certs.admin_token(config.KUBE_DIR)
    return procs.http_ok(f"{config.KUBE_URL}/readyz", _kube_ssl(), {"Authorization": f"Bearer {token}"})


def keycloak_ready() -> bool:
    return procs.http_ok(f"{config.KEYCLOAK_URL}/realms/{config.REALM}/.well-known/openid-configuration")


def etcd_ready() -> bool:
    return procs.http_ok(f"http://{config.HOST}:{config.PORTS.etcd_client}/health")


def up_etcd() -> None:
    if procs.running_pid("etcd"):
        return
    procs.check_port_free("etcd", config.PORTS.etcd_client)
    procs.check_port_free("etcd", config.PORTS.etcd_peer)
    binary = tools.etcd()
    client = f"http://{config.HOST}:{config.PORTS.etcd_client}"
    peer = f"http://{config.HOST}:{config.PORTS.etcd_peer}"
    procs.start(
        "etcd",
        [
            str(binary),
            "--name=devstack",
            f"--data-dir={config.RUN_DIR / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=devstack={peer}",
            "--unsafe-no-fsync=true",  # a throwaway local store: speed over durability
        ],
    )
    procs.wait_until("etcd", etcd_ready, 60, "healthy")


def kube_apiserver_args(binary: Path, with_node: bool) -> list[str]:
    """kube-apiserver's command line: envtest's flags with a static admin token; more with the node.

    With the node, pods get service-account tokens (the ServiceAccount admission plugin), reach the API
    through the `kubernetes` Service at the bridge's address (so it listens on every address, not only
    loopback, whose address inside a pod is the pod's own), and `kubectl logs/exec` reach the kubelet.
    """
    d = config.KUBE_DIR
    args = [
        str(binary),
        f"--etcd-servers=http://{config.HOST}:{config.PORTS.etcd_client}",
        f"--bind-address={'0.0.0.0' if with_node else config.HOST}",
        f"--advertise-address={node.GATEWAY if with_node else config.HOST}",
        f"--secure-port={config.PORTS.kube_apiserver}",
        f"--cert-dir={d}",
        f"--tls-cert-file={d / 'serving.crt'}",
        f"--tls-private-key-file={d / 'serving.key'}",
        f"--client-ca-file={d / 'ca.crt'}",
        f"--token-auth-file={d / 'tokens.csv'}",
        f"--service-account-key-file={d / 'sa.pub'}",
        f"--service-account-signing-key-file={d / 'sa.key'}",
        f"--service-account-issuer={config.KUBE_URL}",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
    ]
    if with_node:
        return [
            *args,
            f"--kubelet-client-certificate={d / 'kubelet-client.crt'}",
            f"--kubelet-client-key={d / 'kubelet-client.key'}",
            # The node's name resolves nowhere; its InternalIP is where the kubelet listens.
            "--kubelet-preferred-address-types=InternalIP",
        ]
    # Without a node no controller makes the default ServiceAccount a pod would be refused without.
    return [*args, "--disable-admission-plugins=ServiceAccount"]


def up_kube_apiserver(with_node: bool = False) -> None:
    """Start kube-apiserver unless it runs with these flags (one started with or without the node is restarted)."""
    certs.ensure_kube_credentials(config.KUBE_DIR)
    if with_node:
        certs.ensure_kubelet_client(config.KUBE_DIR)
    args = kube_apiserver_args(tools.kube_apiserver(), with_node)
    if not _running_as("kube-apiserver", args):
        procs.check_port_free("kube-apiserver", config.PORTS.kube_apiserver)
        procs.start("kube-apiserver", args)
    procs.wait_until("kube-apiserver", kube_ready, 120, "ready")
    write_kubeconfig()
    # The application chart creates Zenith Reservations and Clients: their kinds must be served.
    crds.apply(config.KUBECONFIG)
    service_range.ensure_wide(config.KUBECONFIG)


def _running_as(name: str, args: list[str]) -> bool:
    """True if `name` runs with exactly these arguments; one running with others is stopped first."""
    pid = procs.running_pid(name)
    if not pid:
        return False
    # /proc/PID/cmdline ends with a NUL, hence the empty last item.
    if [arg for arg in procs.command_line(pid) if arg] == args:
        return True
    procs.stop(name)
    return False


def controller_manager_args(binary: Path, with_node: bool) -> list[str]:
    """kube-controller-manager's command line; with the node, the controllers pods need and their keys."""
    args = [
        str(binary),
        f"--kubeconfig={config.KUBECONFIG}",
        f"--controllers={NODE_CONTROLLERS if with_node else CONTROLLERS}",
        "--leader-elect=false",
        "--secure-port=0",
        "--use-service-account-credentials=false",
    ]
    if with_node:
        d = config.KUBE_DIR
        args += [f"--service-account-private-key-file={d / 'sa.key'}", f"--root-ca-file={d / 'ca.crt'}"]
    return args


def up_controller_manager(with_node: bool = False) -> None:
    """Start kube-controller-manager (it has no port to probe: running for 2 s counts as started).

    One running with other flags (started before CONTROLLERS changed, or with/without the node) is restarted.
    """
    args = controller_manager_args(tools.kube_controller_manager(), with_node)
    if _running_as("kube-controller-manager", args):
        return
    procs.start("kube-controller-manager", args)
    deadline = time.monotonic() + 2
    procs.wait_until("kube-controller-manager", lambda: time.monotonic() > deadline, 10, "running")


def volume_binder_args(with_node: bool) -> list[str]:
    """The volume binder's command line: with the node it makes real hostPath volumes (devstack/volumes.py)."""
    args = [sys.executable, "-m", "devstack.volumes"]
    return [*args, f"--volumes-dir={node.LAYOUT.volumes_dir}"] if with_node else args


def redis_ready() -> bool:
    try:
        with socket.create_connection((config.HOST, config.PORTS.redis), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def up_redis() -> None:
    """Start Redis (the worker tests' second broker) in memory only, unless it runs."""
    if procs.running_pid("redis"):
        return
    procs.check_port_free("redis", config.PORTS.redis)
    argv = [str(tools.redis_server()), "--bind", config.HOST, "--port", str(config.PORTS.redis)]
    # Its own process title would overwrite the environment procs.running_pid() recognises it by.
    argv += ["--save", "", "--appendonly", "no", "--set-proc-title", "no"]
    procs.start("redis", argv, cwd=config.RUN_DIR)
    procs.wait_until("redis", redis_ready, 30, "answering PING")


def up_volume_binder(with_node: bool = False) -> None:
    """Start the stand-in volume controller unless it runs in this mode (one in the other is restarted)."""
    args = volume_binder_args(with_node)
    if not _running_as(volumes.NAME, args):
        procs.start(volumes.NAME, args, cwd=config.REPO_DIR)


def write_kubeconfig() -> Path:
    ca = base64.b64encode((config.KUBE_DIR / "ca.crt").read_bytes()).decode()
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "devstack", "cluster": {"server": config.KUBE_URL, "certificate-authority-data": ca}}],
        "users": [{"name": "devstack-admin", "user": {"token": certs.admin_token(config.KUBE_DIR)}}],
        "contexts": [{"name": "devstack", "context": {"cluster": "devstack", "user": "devstack-admin"}}],
        "current-context": "devstack",
    }
    config.KUBECONFIG.write_text(yaml.safe_dump(kubeconfig))
    config.KUBECONFIG.chmod(0o600)
    return config.KUBECONFIG


def up_keycloak(wait: bool = True) -> None:
    """Start Keycloak unless it runs; with wait, return once it serves the realm."""
    if procs.running_pid("keycloak"):
        if wait:
            procs.wait_until("keycloak", keycloak_ready, 240, "serving the realm")
        return
    procs.check_port_free("keycloak", config.PORTS.keycloak)
    procs.check_port_free("keycloak", config.PORTS.keycloak_management)
    java = tools.java_home()
    home = tools.keycloak()
    imports = home / "data" / "import"
    imports.mkdir(parents=True, exist_ok=True)
    for old in imports.glob("*.json"):
        old.unlink()
    shutil.copy(config.DEVSTACK_DIR / "realm.json", imports / f"{config.REALM}-realm.json")
    procs.start(
        "keycloak",
        [
            str(home / "bin" / "kc.sh"),
            "start-dev",
            "--import-realm",
            "--db=dev-mem",  # the realm is imported afresh at every start; nothing to migrate
            f"--hostname={config.KEYCLOAK_URL}",
            f"--http-host={config.HOST}",
            f"--http-port={config.PORTS.keycloak}",
            f"--http-management-port={config.PORTS.keycloak_management}",
        ],
        env={
            "JAVA_HOME": str(java),
            "PATH": f"{java / 'bin'}:/usr/bin:/bin",
            "KC_BOOTSTRAP_ADMIN_USERNAME": config.KEYCLOAK_ADMIN_USER,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": config.KEYCLOAK_ADMIN_PASSWORD,
        },
    )
    if wait:
        procs.wait_until("keycloak", keycloak_ready, 240, "serving the realm")


def up() -> dict[str, str]:
    """Start whatever is not running, wait until all is ready, and return the console's environment."""
    started = time.monotonic()
    config.RUN_DIR.mkdir(parents=True, exist_ok=True)
    helm = tools.helm()
    # Build first, so a build failure leaves nothing half-started.
    tools.etcd()
    tools.kube_apiserver()
    tools.kube_controller_manager()
    tools.keycloak()
    tools.redis_server()
    if node.enabled():
        node.build()
    chart_repo.build(helm)  # a few seconds; only when the chart or its published versions changed
    # Keycloak takes longest to start: launch it, bring up the rest meanwhile, then wait for it.
    up_keycloak(wait=False)
    chart_repo.up()
    up_etcd()
    # A node that runs keeps the stack in node mode until `down`, whoever runs `up` without DEVSTACK_NODE.
    with_node = (node.enabled() or bool(node.running())) and not node.unsupported_reason()
    up_kube_apiserver(with_node)
    up_controller_manager(with_node)
    up_volume_binder(with_node)
    up_redis()
    up_keycloak()
    if node.enabled():
        node.up()
    environment = console_env(helm_without_node.write_wrapper(config.BIN_DIR, helm), with_node)
    write_env_file(environment)
    print(f"devstack: up in {time.monotonic() - started:.1f}s", flush=True)
    return environment


def console_env(helm: Path | None = None, with_node: bool | None = None) -> dict[str, str]:
    """The console's environment; its helm is helm-without-node (see devstack/helm_without_node.py).

    With the node (by default: when it runs) also NODE_HELM_EXECUTABLE, the helm whose releases run
    there (devstack/node/helm_on_node.py), and KEYCLOAK_URL_FROM_CLUSTERS, where pods reach Keycloak
    (devstack/node/relay.py).
    """
    if with_node is None:
        with_node = bool(node.running())
    environment = {
        "KEYCLOAK_URL": config.KEYCLOAK_URL,
        "KEYCLOAK_REALM": config.REALM,
        "OIDC_RP_CLIENT_ID": config.CONSOLE_CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": config.CONSOLE_CLIENT_SECRET,
        "KEYCLOAK_ADMIN_CLIENT_ID": config.ADMIN_CLIENT_ID,
        "KEYCLOAK_ADMIN_CLIENT_SECRET": config.ADMIN_CLIENT_SECRET,
        "HELM_EXECUTABLE": str(helm or helm_without_node.wrapper_path(config.BIN_DIR)),
        "DEVSTACK_KUBECONFIG": str(config.KUBECONFIG),
        "APP_CHART_REPO_URL": config.CHART_REPO_URL,
    }
    if with_node:
        environment["NODE_HELM_EXECUTABLE"] = str(node.helm_wrapper_path())
        environment["KEYCLOAK_URL_FROM_CLUSTERS"] = f"http://{node.GATEWAY}:{config.PORTS.keycloak}"
    return environment


def write_env_file(environment: dict[str, str]) -> None:
    lines = [f"export {key}='{value}'" for key, value in environment.items()]
    config.ENV_FILE.write_text("\n".join(lines) + "\n")


def down() -> list[str]:
    """Stop the processes this stack started (by pid file); return their names.

    The node goes first, whether or not DEVSTACK_NODE is set now, while kube-apiserver still runs to
    take its Node object away; it does nothing if no node was ever started.
    """
    stopped = node.down()
    return stopped + [name for name in reversed(PROCESSES) if procs.stop(name)]


def status() -> dict[str, str]:
    checks = {
        "etcd": etcd_ready,
        "kube-apiserver": kube_ready,
        "keycloak": keycloak_ready,
        chart_repo.NAME: chart_repo.ready,
        volumes.NAME: lambda: True,  # it has no endpoint; running is all there is to know
        "kube-controller-manager": lambda: True,  # likewise
        "redis": redis_ready,
    }
    checks.update({name: lambda: True for name in node.PROCESSES})
    checks["kubelet"] = node.node_ready
    checks["coredns"] = node.dns_ready
    result = {}
    for name in PROCESSES + (node.PROCESSES if node.enabled() or node.running() else ()):
        pid = procs.running_pid(name)
        if pid is None:
            result[name] = "stopped"
        else:
            try:
                ready = checks[name]()
            except OSError:
                ready = False
            result[name] = f"running (pid {pid}, {'ready' if ready else 'not ready'})"
    return result
