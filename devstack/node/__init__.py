"""An opt-in one-node Kubernetes node for the local stack (DEVSTACK_NODE=1): containerd, kubelet, kube-proxy."""

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from devstack import certs, config, helm_without_node, images, procs, tools
from devstack.images import recipes
from devstack.images.build import canonical_ref
from devstack.node import dns, helm_on_node, relay
from devstack.node.cleanup import cgroup_dirs, empty_tables, iptables_cleanup, mounts_under, sysctls_to_restore
from devstack.node.render import (
    BRIDGE,
    CLUSTER_DOMAIN,
    CNI_NETWORK,
    GATEWAY,
    NODE_NAME,
    POD_CIDR,
    TAINT,
    Layout,
    render_cni_conflist,
    render_containerd_config,
    render_corefile,
    render_kube_proxy_config,
    render_kubelet_config,
)
from devstack.procs import DevstackError

# The images the node's containerd gets at `up` (devstack/images builds them; no registry is reachable
# here): its own sandbox image and those the application chart runs.
IMAGES = ("pause", "registry", "hub", "configurable-http-proxy", "singleuser", "podman", "image-cleaner")
# nftables for `nft`, to delete the empty tables iptables leaves behind.
DEBIAN_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables", "conntrack", "nftables")
# Started in this order and stopped in the reverse one.
PROCESSES = ("containerd", "coredns", relay.NAME, "kube-scheduler", "kubelet", "kube-proxy")
# Kernel settings that the kubelet (setupKernelTunables), the CNI bridge (isGateway turns on
# forwarding) or kube-proxy may change: remembered before `up`, put back by `down`.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
)
# Folders outside ours that the node's programs make whatever they are told: the kubelet's device
# plugin socket dir and /var/log/containers links, libcni's result cache, containerd's shim sockets, and
# the hostPath folders (DirectoryOrCreate) of the application chart's builder and image cleaner.
# `down` removes those that did not exist before `up`.
OUTSIDE_PATHS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/lib/cni",
    "/run/containerd",
    "/var/lib/binderadmin",
    "/run/binderadmin",
)


def enabled(environ: dict | None = None) -> bool:
    """True when the node is asked for (DEVSTACK_NODE=1); the stack is the same as ever without it."""
    return (os.environ if environ is None else environ).get("DEVSTACK_NODE") == "1"


LAYOUT = Layout(config.RUN_DIR / "node")


def unsupported_reason(
    uid: int | None = None, proc: Path = Path("/proc"), cgroup: Path = Path("/sys/fs/cgroup")
) -> str:
    """Why this machine cannot run the node, in one line, or "" if it can."""
    if (os.geteuid() if uid is None else uid) != 0:
        return "the node needs root (it runs containerd and changes network interfaces and cgroups)"
    try:
        filesystems = (proc / "filesystems").read_text()
    except OSError:
        return "no /proc/filesystems: this is not a Linux machine the node can run on"
    if "overlay" not in filesystems:
        return "the kernel has no overlay filesystem, which containerd's snapshotter needs"
    if not (cgroup / "memory").is_dir() and not (cgroup / "cgroup.controllers").exists():
        return f"no cgroups at {cgroup}"
    return ""


def build() -> None:
    """Build what the node runs (cached per version), so a build failure leaves nothing half-started."""
    tools.kubelet()
    tools.kube_scheduler()
    tools.kube_proxy()
    tools.coredns()
    for name in IMAGES:
        images.archive(name)  # minutes each the first time; cached by recipe afterwards


def ensure_packages() -> None:
    """Install containerd, runc, the CNI plugins and iptables from Debian if one is missing."""
    missing = [p for p in DEBIAN_PACKAGES if not _installed(p)]
    if not missing:
        return
    print(f"devstack: installing {' '.join(missing)} with apt-get (first time only)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = _run(["apt-get", "install", "-y", "-qq", *missing], env=env)
    if result.returncode != 0:
        raise DevstackError(f"apt-get install {' '.join(missing)} failed: {result.stdout.strip()[-300:]}")


def _installed(package: str) -> bool:
    result = _run(["dpkg-query", "-W", "-f=${Status}", package])
    return result.returncode == 0 and "install ok installed" in result.stdout


def _run(argv: list[str], env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def up(layout: Layout = LAYOUT) -> None:
    """Start containerd, CoreDNS, kube-scheduler, the kubelet and kube-proxy unless running; wait until Ready.

    A machine that cannot run the node gets one line saying why, and the rest of the stack is left as is.
    """
    reason = unsupported_reason()
    if reason:
        print(f"devstack: no node (DEVSTACK_NODE=1): {reason}", flush=True)
        return
    started = time.monotonic()
    try:
        ensure_packages()
        build()
    except DevstackError as exc:
        # Nothing of the node has started yet: the rest of the stack runs without it, as on a machine
        # that cannot run one, and the node's tests skip with their reason.
        print(f"devstack: no node (DEVSTACK_NODE=1): {exc}", flush=True)
        return
    for folder in (layout.root, layout.cni_conf_dir, layout.ipam_dir, layout.kubelet_dir, layout.pod_logs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    _remember_machine(layout)
    (layout.root / "containerd.toml").write_text(render_containerd_config(layout))
    (layout.cni_conf_dir / f"10-{CNI_NETWORK}.conflist").write_text(render_cni_conflist(layout))
    (layout.root / "kubelet.yaml").write_text(render_kubelet_config(layout))
    (layout.root / "kube-proxy.yaml").write_text(render_kube_proxy_config())
    (layout.root / "Corefile").write_text(render_corefile())
    _up_containerd(layout)
    _import_images(layout)
    write_helm_wrapper()
    _up_coredns(layout)
    if not procs.running_pid(relay.NAME):
        ports = [str(config.PORTS.keycloak), str(config.PORTS.chart_repo)]
        procs.start(relay.NAME, [sys.executable, "-m", "devstack.node.relay", GATEWAY, *ports], cwd=config.REPO_DIR)
    kubeconfig = str(config.KUBECONFIG)
    _start_once(
        "kube-scheduler",
        [
            str(tools.kube_scheduler()),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            f"--bind-address={config.HOST}",
        ],
    )
    _start_once(
        "kubelet",
        [
            str(tools.kubelet()),
            f"--config={layout.root / 'kubelet.yaml'}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={layout.kubelet_dir}",
            # --cert-dir's default is under /var/lib/kubelet, whatever --root-dir says.
            f"--cert-dir={layout.kubelet_dir / 'pki'}",
            f"--hostname-override={NODE_NAME}",
        ],
    )
    _start_once("kube-proxy", [str(tools.kube_proxy()), f"--config={layout.root / 'kube-proxy.yaml'}"])
    procs.wait_until("kubelet", node_ready, 180, f"registering node {NODE_NAME} Ready")
    print(f"devstack: node {NODE_NAME} Ready in {time.monotonic() - started:.1f}s", flush=True)


def _ensure_bridge() -> None:
    # Made here rather than by the CNI plugin at the first pod, so CoreDNS can listen on its address
    # from the start; the plugin takes the bridge as it finds it.
    if _run(["ip", "link", "show", BRIDGE]).returncode != 0:
        prefix = POD_CIDR.split("/")[1]
        for argv in (
            ["ip", "link", "add", BRIDGE, "type", "bridge"],
            ["ip", "addr", "add", f"{GATEWAY}/{prefix}", "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
        ):
            result = _run(argv)
            if result.returncode != 0:
                raise DevstackError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def dns_ready() -> bool:
    """True once CoreDNS answers for the API server's Service."""
    return bool(dns.resolve(f"kubernetes.default.svc.{CLUSTER_DOMAIN}", GATEWAY))


def _up_coredns(layout: Layout) -> None:
    _ensure_bridge()
    _start_once("coredns", [str(tools.coredns()), "-conf", str(layout.root / "Corefile")])
    procs.wait_until("coredns", dns_ready, 60, f"answering on {GATEWAY}:53")


def _start_once(name: str, argv: list[str]) -> None:
    if not procs.running_pid(name):
        procs.start(name, argv)


def _up_containerd(layout: Layout) -> None:
    if not procs.running_pid("containerd"):
        procs.start("containerd", ["containerd", f"--config={layout.root / 'containerd.toml'}"])
    procs.wait_until("containerd", lambda: _ctr(layout, "version").returncode == 0, 60, "answering on its socket")


def _ctr(layout: Layout, *args: str) -> subprocess.CompletedProcess:
    return _run(["ctr", f"--address={layout.socket}", "--namespace=k8s.io", *args], timeout=120)


def _import_images(layout: Layout) -> None:
    """Import each image's archive into containerd unless that very archive was imported and the image is there.

    The archives' names carry their recipe's hash, so a changed recipe is imported again; containerd
    keeps its images across `down`, so a warm `up` imports nothing.
    """
    imported_file = layout.root / "imported-images.json"
    try:
        imported = json.loads(imported_file.read_text())
    except (OSError, ValueError):
        imported = {}
    present = set(_ctr(layout, "images", "list", "--quiet").stdout.split())
    for name in IMAGES:
        archive = images.archive(name)
        ref = canonical_ref(recipes.RECIPES[name].ref)
        if imported.get(name) == archive.name and ref in present:
            continue
        result = _ctr(layout, "images", "import", str(archive))
        if result.returncode != 0:
            raise DevstackError(f"importing {archive} into containerd failed: {result.stderr.strip()[-300:]}")
        imported[name] = archive.name
        imported_file.write_text(json.dumps(imported, indent=1) + "\n")


HELM_WRAPPER = "helm-on-node"


def helm_wrapper_path() -> Path:
    """The console's helm with the node (devstack/node/helm_on_node.py); the tests' stays helm-without-node."""
    return config.BIN_DIR / HELM_WRAPPER


def write_helm_wrapper() -> Path:
    """Write helm-on-node for the images the node now has (rewritten only when they change)."""
    settings = {
        "toleration": {**TAINT, "operator": "Equal"},
        "images": sorted(canonical_ref(recipes.RECIPES[name].ref) for name in IMAGES),
    }
    wrapper = helm_without_node.Wrapper(
        name=HELM_WRAPPER,
        post_renderer=Path(helm_on_node.__file__).resolve(),
        renderer_args=(json.dumps(settings, sort_keys=True),),
        comment=(
            "# The console's helm when the local stack has its node: install and upgrade let the release's\n"
            "# workloads tolerate the node's taint where the node has their images (devstack/node/helm_on_node.py).\n"
        ),
    )
    return helm_without_node.write_wrapper(config.BIN_DIR, tools.helm(), wrapper=wrapper)


def _api(method: str, path: str) -> dict | None:
    """One call to the local kube-apiserver as the admin; None for 404."""
    request = urllib.request.Request(
        f"{config.KUBE_URL}{path}",
        method=method,
        headers={"Authorization": f"Bearer {certs.admin_token(config.KUBE_DIR)}"},
    )
    context = ssl.create_default_context(cafile=str(config.KUBE_DIR / "ca.crt"))
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def node_ready() -> bool:
    """True once the Node object says Ready."""
    try:
        node = _api("GET", f"/api/v1/nodes/{NODE_NAME}")
    except (urllib.error.URLError, OSError, ValueError):
        return False
    conditions = (node or {}).get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _remember_machine(layout: Layout) -> None:
    if layout.before_file.exists():
        return  # a second `up`: keep what the machine had before the first one
    absent = [path for path in OUTSIDE_PATHS if not Path(path).exists()]
    before = {"sysctls": _read_sysctls(), "absent": absent, "nft_tables": _nft_tables()}
    layout.before_file.write_text(json.dumps(before, indent=1))


def _nft_tables() -> list[str]:
    # `nft list tables` prints one "table <family> <name>" a line.
    return [line.split(None, 1)[1] for line in _run(["nft", "list", "tables"]).stdout.splitlines() if line]


def _read_sysctls() -> dict[str, str]:
    values = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            values[key] = Path("/proc/sys", key).read_text().strip()
    return values


def running() -> list[str]:
    """The node's processes that run."""
    return [name for name in PROCESSES if procs.running_pid(name)]


def down(layout: Layout = LAYOUT) -> list[str]:
    """Stop the node and remove what it made on the machine; return what was done, [] if it never ran.

    Processes, pods' containers, mounts under our folder, the bridge, network namespaces, KUBE-*
    iptables chains, the kubepods cgroups, the Node object and the kernel settings it changed.
    """
    if not layout.before_file.exists() and not running():
        return []
    done = [name for name in ("kube-proxy", "kubelet", "kube-scheduler", relay.NAME, "coredns") if procs.stop(name)]
    if procs.running_pid("containerd"):
        _remove_containers(layout)
    if procs.stop("containerd"):
        done.append("containerd")
    _kill_leftovers(layout)
    mounts = mounts_under(Path("/proc/self/mountinfo").read_text(), layout.root)
    for point in mounts:
        _run(["umount", "--lazy", point])
    if mounts:
        done.append(f"{len(mounts)} mounts")
    if _run(["ip", "link", "show", BRIDGE]).returncode == 0:
        _run(["ip", "link", "delete", BRIDGE])
        done.append(f"bridge {BRIDGE}")
    done += _remove_kube_chains()
    done += _remove_new_empty_tables(layout)
    for cgroup in cgroup_dirs(Path("/sys/fs/cgroup")):
        with contextlib.suppress(OSError):
            cgroup.rmdir()
    _remove_cni_cache()
    done += _restore_machine(layout)
    done += _remove_node_object()
    left = mounts_under(Path("/proc/self/mountinfo").read_text(), layout.root)
    if left:
        # Removing files through a mount that is still there could reach outside our folder.
        return [*done, f"left {layout.root} as is: {left[0]} is still mounted"]
    # What the node made under its folder; the images containerd holds stay, like etcd's data.
    cri = layout.containerd_root / "io.containerd.grpc.v1.cri"
    for folder in (
        layout.containerd_state,
        layout.ipam_dir,
        layout.pod_logs_dir,
        layout.kubelet_dir,
        cri / "sandboxes",
        cri / "containers",
    ):
        shutil.rmtree(folder, ignore_errors=True)
    return done


def _remove_containers(layout: Layout) -> None:
    # Kill every task and delete its container through containerd, so the shims unmount the root
    # filesystems and exit; the kubelet, which would start them again, is stopped by now.
    for container in _ctr(layout, "containers", "list", "--quiet").stdout.split():
        _ctr(layout, "tasks", "delete", "--force", container)
        _ctr(layout, "containers", "delete", container)


def _kill_leftovers(layout: Layout) -> None:
    # Whatever still runs in the pods' cgroups, and any shim of our containerd (it names our socket).
    pids = set()
    for cgroup in cgroup_dirs(Path("/sys/fs/cgroup")):
        with contextlib.suppress(OSError):
            pids |= {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and str(layout.socket) in " ".join(procs.command_line(int(entry.name))):
            pids.add(int(entry.name))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if pids:
        time.sleep(0.5)


def _remove_kube_chains() -> list[str]:
    done = []
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        saved = _run([f"{tool}-save"]).stdout
        for args in iptables_cleanup(saved):
            _run([tool, "-w", *args])
        if "KUBE-" in saved:
            done.append(f"{tool} KUBE-* chains")
    return done


def _remove_new_empty_tables(layout: Layout) -> list[str]:
    try:
        before = set(json.loads(layout.before_file.read_text())["nft_tables"])
    except (OSError, ValueError, KeyError):
        return []
    done = []
    for tool, family in (("iptables", "ip"), ("ip6tables", "ip6")):
        for table in empty_tables(_run([f"{tool}-save"]).stdout):
            if f"{family} {table}" not in before and _run(["nft", "delete", "table", family, table]).returncode == 0:
                done.append(f"nft table {family} {table}")
    return done


def _restore_machine(layout: Layout) -> list[str]:
    try:
        before = json.loads(layout.before_file.read_text())
    except (OSError, ValueError):
        return []
    changed = sysctls_to_restore(before["sysctls"], _read_sysctls())
    for key, value in changed.items():
        with contextlib.suppress(OSError):
            Path("/proc/sys", key).write_text(value)
    done = [f"sysctl {key}={value}" for key, value in changed.items()]
    for path in before["absent"]:
        if Path(path).exists():
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path}")
    layout.before_file.unlink()
    return done


def _remove_cni_cache() -> None:
    # libcni caches each attachment's result under /var/lib/cni; removing a pod normally deletes it.
    results = Path("/var/lib/cni/results")
    for entry in results.glob(f"{CNI_NETWORK}-*") if results.is_dir() else []:
        entry.unlink(missing_ok=True)


def _remove_node_object() -> list[str]:
    # A Node left behind would make every DaemonSet of the shared stack want a pod on it.
    removed = []
    for path in (
        f"/api/v1/nodes/{NODE_NAME}",
        f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE_NAME}",
    ):
        try:
            if _api("DELETE", path) is not None:
                removed.append(f"deleted {path}")
        except (urllib.error.URLError, OSError, ValueError):
            removed.append(f"could not delete {path}: is kube-apiserver running?")
    return removed
