"""Builds or downloads each part of the local stack once, by pinned version, into the cache."""

import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from devstack import config
from devstack.procs import DevstackError


def go_executable() -> str:
    go = shutil.which("go")
    if not go:
        raise DevstackError("Go is not installed or not on PATH: install Go 1.24 or newer, then run again.")
    return go


def _run_build(argv: list[str], what: str, cwd: Path | None = None, env: dict | None = None) -> None:
    log = config.LOG_DIR / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"devstack: building {what} (first time only; a few minutes)...", flush=True)
    with open(log, "ab") as out:
        out.write(f"\n--- {' '.join(argv)}\n".encode())
        out.flush()
        result = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise DevstackError(f"building {what} failed (exit {result.returncode}); see {log}")


def helm() -> Path:
    """The pinned helm binary, built with `go install` on first use."""
    ldflags = (
        f"-X helm.sh/helm/v3/internal/version.version={config.HELM_VERSION} "
        "-X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    )
    return _go_install("helm.sh/helm/v3/cmd/helm", config.HELM_VERSION, f"helm {config.HELM_VERSION}", ldflags)


def coredns() -> Path:
    """The pinned CoreDNS, the opt-in node's cluster DNS, built with `go install` on first use."""
    return _go_install("github.com/coredns/coredns", config.COREDNS_VERSION, f"CoreDNS {config.COREDNS_VERSION}")


def _go_install(package: str, version: str, what: str, ldflags: str = "") -> Path:
    """`go install package@version` into BIN_DIR as `<binary>-<version>`, once; the cached binary after."""
    binary = package.rsplit("/", 1)[-1]
    target = config.BIN_DIR / f"{binary}-{version}"
    if target.exists():
        return target
    go = go_executable()
    config.BIN_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=config.BIN_DIR) as gobin:
        flags = ["-ldflags", ldflags] if ldflags else []
        _run_build([go, "install", *flags, f"{package}@{version}"], what, env={"GOBIN": gobin, "CGO_ENABLED": "0"})
        Path(gobin, binary).rename(target)
    return target
    go = go_executable()
    config.BIN_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=config.BIN_DIR) as gobin:
        _run_build(
            [go, "install", f"github.com/coredns/coredns@{config.COREDNS_VERSION}"],
            f"CoreDNS {config.COREDNS_VERSION}",
            env={"GOBIN": gobin, "CGO_ENABLED": "0"},
        )
        Path(gobin, "coredns").rename(target)
    return target


def kube_apiserver() -> Path:
    """kube-apiserver built from k8s.io/kubernetes through devstack/kube/go.mod."""
    return _kubernetes_command("kube-apiserver")


def kube_controller_manager() -> Path:
    """kube-controller-manager, for the controllers that work without a node (stack.CONTROLLERS)."""
    return _kubernetes_command("kube-controller-manager")


def kubelet() -> Path:
    """The kubelet of the opt-in node (devstack/node.py), from the same module as kube-apiserver."""
    return _kubernetes_command("kubelet")


def kube_scheduler() -> Path:
    """kube-scheduler, for the opt-in node."""
    return _kubernetes_command("kube-scheduler")


def kube_proxy() -> Path:
    """kube-proxy (iptables mode), for the opt-in node."""
    return _kubernetes_command("kube-proxy")


def _kubernetes_command(name: str) -> Path:
    target = config.BIN_DIR / f"{name}-{config.KUBERNETES_VERSION}"
    if target.exists():
        return target
    major, minor = config.KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    ldflags = " ".join(
        f"-X k8s.io/component-base/version.{key}={value}"
        for key, value in {
            "gitVersion": config.KUBERNETES_VERSION,
            "gitMajor": major,
            "gitMinor": minor,
            "gitTreeState": "clean",
        }.items()
    )
    _build_from_kube_module(f"k8s.io/kubernetes/cmd/{name}", target, ldflags, f"{name} {config.KUBERNETES_VERSION}")
    return target


def etcd() -> Path:
    """The etcd server at the version Kubernetes pins, built through devstack/kube/go.mod."""
    target = config.BIN_DIR / f"etcd-{config.ETCD_VERSION}"
    if target.exists():
        return target
    _build_from_kube_module("go.etcd.io/etcd/server/v3", target, "", f"etcd {config.ETCD_VERSION}")
    return target


def _build_from_kube_module(package: str, target: Path, ldflags: str, what: str) -> None:
    go = go_executable()
    config.BIN_DIR.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    argv = [go, "build", "-o", str(partial)]
    if ldflags:
        argv += ["-ldflags", ldflags]
    _run_build([*argv, package], what, cwd=config.DEVSTACK_DIR / "kube", env={"CGO_ENABLED": "0"})
    partial.rename(target)


def keycloak() -> Path:
    """The Keycloak distribution from Maven Central, unpacked; returns its home folder."""
    home = config.CACHE_DIR / f"keycloak-{config.KEYCLOAK_VERSION}"
    if (home / "bin" / "kc.sh").exists():
        return home
    version = config.KEYCLOAK_VERSION
    url = f"{config.MAVEN_CENTRAL}/org/keycloak/keycloak-quarkus-dist/{version}/keycloak-quarkus-dist-{version}.tar.gz"
    config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    print(f"devstack: downloading Keycloak {version} from Maven Central (first time only)...", flush=True)
    with tempfile.TemporaryDirectory(dir=config.CACHE_DIR) as tmp:
        archive = Path(tmp, "keycloak.tar.gz")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as exc:
            raise DevstackError(
                f"downloading Keycloak from {url} failed ({exc}); check the network or DEVSTACK_MAVEN_URL."
            ) from None
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="tar")
        Path(tmp, f"keycloak-{version}").rename(home)
    return home


def redis_server() -> Path:
    """Debian's redis-server (`make test` and `make run` install it with apt-get when it is missing)."""
    found = shutil.which("redis-server")
    if not found:
        raise DevstackError("redis-server is not installed: run `apt-get install redis-server`, then run again.")
    return Path(found)


def java_home(jvm_root: Path = Path("/usr/lib/jvm")) -> Path:
    """A JDK that Keycloak supports: JAVA_HOME if it is new enough, else the newest in jvm_root."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    if jvm_root.is_dir():
        candidates += sorted(jvm_root.iterdir(), key=_java_major, reverse=True)
    for home in candidates:
        if (home / "bin" / "java").exists() and _java_major(home) >= config.KEYCLOAK_MIN_JAVA:
            return home
    raise DevstackError(
        f"Keycloak {config.KEYCLOAK_VERSION} needs Java {config.KEYCLOAK_MIN_JAVA} or newer: "
        "install one (e.g. a Temurin JDK) and set JAVA_HOME to it."
    )


def _java_major(home: Path) -> int:
    try:
        for line in (home / "release").read_text().splitlines():
            if line.startswith("JAVA_VERSION="):
                version = line.split("=", 1)[1].strip('"')
                first = version.split(".")[0]
                return int(version.split(".")[1]) if first == "1" else int(first)
    except (OSError, ValueError, IndexError):
        pass
    return 0
