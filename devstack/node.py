"""An opt-in one-node Kubernetes node for the local stack (DEVSTACK_NODE=1): containerd, kubelet, kube-proxy."""

import contextlib
import gzip
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from devstack import certs, config, procs, tools
from devstack.procs import DevstackError

NODE_NAME = "devstack-node"
# Pods get addresses on our own bridge from a private /24 that clashes neither with the service range
# (kube-apiserver's --service-cluster-ip-range, 10.0.0.0/24) nor with containerd's default CNI network.
POD_CIDR = "10.85.0.0/24"
BRIDGE = "devstack0"
CNI_NETWORK = "devstack-pods"
CNI_BIN_DIR = Path("/usr/lib/cni")  # where Debian's containernetworking-plugins puts them
# containerd starts every pod's sandbox from this image; node.pause_image() builds it, as no registry
# is reachable here.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
# While the node is opt-in it is tainted, so the shared stack behaves as before for everyone else:
# a DaemonSet wants no pod on it and nothing is scheduled there unless it tolerates this taint.
TAINT = {"key": "devstack.binderadmin.local/node", "value": "opt-in", "effect": "NoSchedule"}
DEBIAN_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables", "conntrack")
# Started in this order and stopped in the reverse one.
PROCESSES = ("containerd", "kube-scheduler", "kubelet", "kube-proxy")
KUBELET_HEALTHZ_PORT = 10248
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
# plugin socket dir and /var/log/containers links, libcni's result cache, containerd's shim sockets.
# `down` removes those that did not exist before `up`.
OUTSIDE_PATHS = ("/var/lib/kubelet", "/var/log/containers", "/var/lib/cni", "/run/containerd")


def enabled(environ: dict | None = None) -> bool:
    """True when the node is asked for (DEVSTACK_NODE=1); the stack is the same as ever without it."""
    return (os.environ if environ is None else environ).get("DEVSTACK_NODE") == "1"


@dataclass(frozen=True)
class Layout:
    """Where the node keeps its state: all of it under one folder of the stack's run dir."""

    root: Path

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd-state"

    @property
    def socket(self) -> Path:
        return self.containerd_state / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        return self.containerd_state / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def ipam_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def kubelet_dir(self) -> Path:
        return self.root / "kubelet"

    @property
    def pod_logs_dir(self) -> Path:
        return self.root / "pods"

    @property
    def before_file(self) -> Path:
        """What the machine had before the first `up`: the kernel settings and which outside folders were absent."""
        return self.root / "before-up.json"


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


def render_containerd_config(layout: Layout) -> str:
    """containerd's configuration (version 2, containerd 1.6): our own dirs and socket, the CRI plugin set for this VM.

    https://github.com/containerd/containerd/blob/release/1.6/docs/cri/config.md
    """
    cri = {
        "sandbox_image": PAUSE_IMAGE,
        # The VM lacks CAP_SYS_RESOURCE: without this every sandbox fails with
        # "can't get final child's PID from pipe", as runc may not lower the oom_score_adj.
        "restrict_oom_score_adj": True,
        # Network namespaces under our state dir, not /var/run/netns, so `down` finds every one.
        "netns_mounts_under_state_dir": True,
        "disable_apparmor": True,
        "enable_selinux": False,
        "systemd_cgroup": False,
        "stream_server_address": config.HOST,
    }
    lines = [
        "version = 2",
        f"root = {_toml(layout.containerd_root)}",
        f"state = {_toml(layout.containerd_state)}",
        "",
        "[grpc]",
        f"  address = {_toml(layout.socket)}",
        "",
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {_toml(layout.root / 'opt')}",
        "",
        '[plugins."io.containerd.grpc.v1.cri"]',
        *(f"  {key} = {_toml(value)}" for key, value in cri.items()),
        "",
        '[plugins."io.containerd.grpc.v1.cri".cni]',
        f"  bin_dir = {_toml(CNI_BIN_DIR)}",
        f"  conf_dir = {_toml(layout.cni_conf_dir)}",
        "",
        '[plugins."io.containerd.grpc.v1.cri".containerd]',
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        "",
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
        '  runtime_type = "io.containerd.runc.v2"',
        "",
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
        "  SystemdCgroup = false",  # the kubelet's cgroupDriver is cgroupfs: no systemd here
        f"  Root = {_toml(layout.runc_root)}",
        "",
    ]
    return "\n".join(lines)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def render_cni_conflist(layout: Layout) -> str:
    """The pods' network: a bridge of ours with host-local addresses from POD_CIDR.

    No masquerading (pods reach nothing outside this machine here), so the plugin makes no iptables
    chains; the bridge is the pods' gateway, so traffic to a Service's address goes through the host.
    """
    conflist = {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.ipam_dir),
                },
            }
        ],
    }
    return json.dumps(conflist, indent=2) + "\n"


def render_kubelet_config(layout: Layout) -> str:
    """The kubelet's KubeletConfiguration (v1beta1) for this VM.

    https://kubernetes.io/docs/reference/config-api/kubelet-config.v1beta1/
    """
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",  # no systemd on these VMs
        "failSwapOn": False,
        "failCgroupV1": False,  # the VMs have cgroup v1
        "containerRuntimeEndpoint": f"unix://{layout.socket}",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(config.KUBE_DIR / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "readOnlyPort": 0,
        "healthzBindAddress": config.HOST,
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "podLogsDir": str(layout.pod_logs_dir),
        "volumePluginDir": str(layout.kubelet_dir / "volume-plugins"),
        "registerWithTaints": [TAINT],
        "clusterDomain": "cluster.local",
        # The disk is shared with the rest of the machine: evict only when it is really full.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
    }
    return yaml.safe_dump(kubelet, sort_keys=False)


def render_kube_proxy_config() -> str:
    """kube-proxy's KubeProxyConfiguration (v1alpha1): iptables mode, touching no kernel setting it need not.

    https://kubernetes.io/docs/reference/config-api/kube-proxy-config.v1alpha1/
    """
    proxy = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(config.KUBECONFIG)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"{config.HOST}:10256",
        "metricsBindAddress": f"{config.HOST}:10249",
        # 0 leaves the machine's conntrack table size and timeouts as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        # NodePorts on 127.0.0.1 would need net.ipv4.conf.all.route_localnet=1 for the whole machine.
        "iptables": {"localhostNodePorts": False},
        "nodePortAddresses": ["primary"],  # the node's own address, not every address of the machine
    }
    return yaml.safe_dump(proxy, sort_keys=False)


# --- cleanup planning (pure: from what the machine reports to the commands that undo our part) ---


def iptables_cleanup(save_output: str, prefix: str = "KUBE-") -> list[list[str]]:
    """iptables arguments that remove the chains named `prefix`* and the rules elsewhere that jump to them.

    `save_output` is `iptables-save`'s; the rules go first, then the chains are flushed, then deleted
    (a chain can be deleted only when no rule refers to it).
    """
    rules: list[list[str]] = []
    chains: list[tuple[str, str]] = []
    table = ""
    for line in save_output.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            chain = line[1:].split()[0]
            if chain.startswith(prefix):
                chains.append((table, chain))
        elif line.startswith("-A "):
            words = shlex.split(line)
            chain = words[1]
            target = words[words.index("-j") + 1] if "-j" in words else ""
            if not chain.startswith(prefix) and target.startswith(prefix):
                rules.append(["-t", table, "-D", *words[1:]])
    flushes = [["-t", table, "-F", chain] for table, chain in chains]
    deletes = [["-t", table, "-X", chain] for table, chain in chains]
    return rules + flushes + deletes


def mounts_under(mountinfo: str, root: Path) -> list[str]:
    """Mount points at or under `root` in /proc/self/mountinfo's text, deepest first (the order to unmount)."""
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if point == str(root) or point.startswith(f"{root}/"):
            found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040 ...).
    return text.encode().decode("unicode_escape")


def cgroup_dirs(cgroup_root: Path, name: str = "kubepods") -> list[Path]:
    """Every cgroup named `name` (and those below it) in each hierarchy under cgroup_root, deepest first."""
    found = []
    for hierarchy in sorted(cgroup_root.iterdir()) if cgroup_root.is_dir() else []:
        top = hierarchy / name
        if not top.is_dir():
            continue
        for parent, _dirs, _files in os.walk(top, topdown=False):
            found.append(Path(parent))
    return found


def sysctls_to_restore(before: dict[str, str], now: dict[str, str]) -> dict[str, str]:
    """The kernel settings that differ from what they were before `up`, with the value to put back."""
    return {key: value for key, value in before.items() if now.get(key) not in (None, value)}


# --- the pause image (containerd's sandbox image) ---


def oci_archive(binary: bytes, name: str, arch: str) -> bytes:
    """An OCI image layout as a tar, holding one layer with /pause, named `name` for `ctr images import`.

    https://github.com/opencontainers/image-spec/blob/main/image-layout.md
    """
    layer = _tar({"pause": (binary, 0o755)})
    diff_id = f"sha256:{hashlib.sha256(layer).hexdigest()}"
    layer_gz = gzip.compress(layer, mtime=0)
    image_config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535", "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_blob = json.dumps(image_config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _descriptor("application/vnd.oci.image.config.v1+json", config_blob),
        "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer_gz)],
    }
    manifest_blob = json.dumps(manifest, sort_keys=True).encode()
    tag = name.rsplit(":", 1)[1]
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                **_descriptor("application/vnd.oci.image.manifest.v1+json", manifest_blob),
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
                "platform": {"architecture": arch, "os": "linux"},
            }
        ],
    }
    files = {
        "oci-layout": (json.dumps({"imageLayoutVersion": "1.0.0"}).encode(), 0o644),
        "index.json": (json.dumps(index, sort_keys=True).encode(), 0o644),
    }
    for blob in (layer_gz, config_blob, manifest_blob):
        files[f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"] = (blob, 0o644)
    return _tar(files)


def _descriptor(media_type: str, blob: bytes) -> dict:
    return {"mediaType": media_type, "digest": f"sha256:{hashlib.sha256(blob).hexdigest()}", "size": len(blob)}


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    # Fixed owner and times, so the same binary always gives the same digests.
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def pause_binary() -> Path:
    """The static pause program (devstack/node/pause), built once into the cache."""
    source = config.DEVSTACK_DIR / "node" / "pause"
    digest = hashlib.sha256((source / "main.go").read_bytes()).hexdigest()[:12]
    target = config.BIN_DIR / f"pause-{digest}"
    if target.exists():
        return target
    config.BIN_DIR.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    go = tools.go_executable()
    argv = [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "."]
    tools._run_build(argv, "the pause program", cwd=source, env={"CGO_ENABLED": "0"})
    partial.rename(target)
    return target


# --- running it ---


def build() -> None:
    """Build what the node runs (cached per version), so a build failure leaves nothing half-started."""
    tools.kubelet()
    tools.kube_scheduler()
    tools.kube_proxy()
    pause_binary()


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
    """Start containerd, kube-scheduler, the kubelet and kube-proxy unless running; wait until the node is Ready.

    A machine that cannot run the node gets one line saying why, and the rest of the stack is left as is.
    """
    reason = unsupported_reason()
    if reason:
        print(f"devstack: no node (DEVSTACK_NODE=1): {reason}", flush=True)
        return
    started = time.monotonic()
    ensure_packages()
    build()
    for folder in (layout.root, layout.cni_conf_dir, layout.ipam_dir, layout.kubelet_dir, layout.pod_logs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    _remember_machine(layout)
    (layout.root / "containerd.toml").write_text(render_containerd_config(layout))
    (layout.cni_conf_dir / f"10-{CNI_NETWORK}.conflist").write_text(render_cni_conflist(layout))
    (layout.root / "kubelet.yaml").write_text(render_kubelet_config(layout))
    (layout.root / "kube-proxy.yaml").write_text(render_kube_proxy_config())
    _up_containerd(layout)
    _ensure_pause_image(layout)
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


def _start_once(name: str, argv: list[str]) -> None:
    if not procs.running_pid(name):
        procs.start(name, argv)


def _up_containerd(layout: Layout) -> None:
    if not procs.running_pid("containerd"):
        procs.start("containerd", ["containerd", f"--config={layout.root / 'containerd.toml'}"])
    procs.wait_until("containerd", lambda: _ctr(layout, "version").returncode == 0, 60, "answering on its socket")


def _ctr(layout: Layout, *args: str) -> subprocess.CompletedProcess:
    return _run(["ctr", f"--address={layout.socket}", "--namespace=k8s.io", *args], timeout=120)


def _ensure_pause_image(layout: Layout) -> None:
    if PAUSE_IMAGE in _ctr(layout, "images", "list", "--quiet").stdout.split():
        return
    arch = _run([tools.go_executable(), "env", "GOARCH"]).stdout.strip()
    archive = layout.root / "pause-image.tar"
    archive.write_bytes(oci_archive(pause_binary().read_bytes(), PAUSE_IMAGE, arch))
    result = _ctr(layout, "images", "import", str(archive))
    archive.unlink()
    if result.returncode != 0:
        raise DevstackError(f"importing the pause image into containerd failed: {result.stderr.strip()[-300:]}")


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
    layout.before_file.write_text(json.dumps({"sysctls": _read_sysctls(), "absent": absent}, indent=1))


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
    done = [name for name in ("kube-proxy", "kubelet", "kube-scheduler") if procs.stop(name)]
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
