"""The opt-in node's names and configuration files: containerd, the CNI network, the kubelet, kube-proxy."""

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from devstack import config

NODE_NAME = "devstack-node"
# Pods get addresses on our own bridge from a private /24 that clashes neither with the service range
# (kube-apiserver's --service-cluster-ip-range, 10.0.0.0/24) nor with containerd's default CNI network.
POD_CIDR = "10.85.0.0/24"
# The bridge's own address, the pods' gateway; CoreDNS answers there (a process of the host, as no
# image of it can be pulled here), so it is also the pods' nameserver.
GATEWAY = str(ipaddress.ip_network(POD_CIDR)[1])
CLUSTER_DOMAIN = "cluster.local"
BRIDGE = "devstack0"
CNI_NETWORK = "devstack-pods"
CNI_BIN_DIR = Path("/usr/lib/cni")  # where Debian's containernetworking-plugins puts them
# containerd starts every pod's sandbox from this image; devstack/images builds it (recipe `pause`), as
# no registry is reachable here.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
# While the node is opt-in it is tainted, so the shared stack behaves as before for everyone else:
# a DaemonSet wants no pod on it and nothing is scheduled there unless it tolerates this taint.
TAINT = {"key": "devstack.binderadmin.local/node", "value": "opt-in", "effect": "NoSchedule"}
KUBELET_HEALTHZ_PORT = 10248


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
    def volumes_dir(self) -> Path:
        """The folders of the hostPath volumes the volume binder makes (devstack/volumes.py); kept across `down`."""
        return self.root / "volumes"

    @property
    def before_file(self) -> Path:
        """What the machine had before the first `up`: the kernel settings and which outside folders were absent."""
        return self.root / "before-up.json"


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
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [GATEWAY],
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
        # masqueradeAll: pods share one bridge, whose frames iptables may not see (br_netfilter), so a pod
        # answering another that reached it through a Service would answer past the NAT; masquerading
        # sends the answer back through the host. Service traffic only: the CNI network masquerades nothing.
        "iptables": {"localhostNodePorts": False, "masqueradeAll": True},
        "nodePortAddresses": ["primary"],  # the node's own address, not every address of the machine
    }
    return yaml.safe_dump(proxy, sort_keys=False)


def render_corefile() -> str:
    """CoreDNS's configuration: cluster names from the API server on the bridge's address, the rest forwarded.

    https://coredns.io/plugins/kubernetes/
    """
    return f"""\
.:53 {{
    bind {GATEWAY}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {config.KUBECONFIG}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
    cache 30
}}
"""
