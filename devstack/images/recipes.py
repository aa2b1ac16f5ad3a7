"""What goes into each image the charts run, as data: Debian packages, build steps, files and OCI settings."""

import os
from dataclasses import dataclass, field
from pathlib import Path

from devstack import config

# The frozen requirements of the upstream images, vendored (upstream/VENDORED.md): a clone anywhere
# builds the same images.
UPSTREAM_IMAGES = Path(os.environ.get("DEVSTACK_UPSTREAM_IMAGES", Path(__file__).resolve().parent / "upstream"))
PAUSE_SOURCE = Path(__file__).resolve().parent / "pause"

# The upstream images run from the python:3.X-slim-bookworm images, so bookworm is the default suite.
DEBIAN_SUITE = "bookworm"
# Where the steps install Python: a virtual environment at /usr/local puts `python`, `jupyterhub`,
# `pip` in /usr/local/bin as the python images have them, so the charts' commands find them on PATH.
VENV = "/usr/local"
PIP = f"{VENV}/bin/pip install --no-cache-dir --disable-pip-version-check"
ADD_JOVYAN = "useradd --uid 1000 --user-group --create-home --home-dir /home/jovyan --shell /bin/bash jovyan"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class GoProgram:
    """A Go main package built statically and put into the image at `dest`.

    Either `module`@`version` from the Go module proxy, with `replaces` for modules whose own go.mod
    has replace directives (`go install` refuses those), or `source`: a folder of ours with a main.go.
    """

    dest: str
    package: str = ""
    module: str = ""
    version: str = ""
    replaces: tuple[tuple[str, str], ...] = ()
    ldflags: str = "-s -w"
    source: str = ""


@dataclass(frozen=True)
class OciConfig:
    """The image settings a Dockerfile gives with ENTRYPOINT, CMD, USER, WORKDIR, ENV and EXPOSE."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    workdir: str = ""
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    """One image: `ref` is the exact name:tag a chart references, so `IfNotPresent` finds it.

    With a `suite`, the root filesystem is Debian's (mmdebstrap, variant minbase, plus `packages`);
    `build_packages` are installed for the `steps` and purged after them. Without one, the image holds
    only `files` and Go programs. `requirements` names an upstream image folder whose frozen
    requirements.txt is put at /tmp/devstack-build/requirements.txt for the steps.
    """

    name: str
    ref: str
    config: OciConfig
    suite: str | None = DEBIAN_SUITE
    packages: tuple[str, ...] = ()
    build_packages: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    requirements: str = ""
    go: tuple[GoProgram, ...] = ()
    files: tuple[tuple[str, str], ...] = field(default=())


# The configuration the official registry image carries at /etc/docker/registry/config.yml (the
# docker-registry chart mounts its own over it; a plain `docker run registry` uses this one).
REGISTRY_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""

PAUSE = Recipe(
    name="pause",
    ref="registry.k8s.io/pause:3.10",
    suite=None,
    go=(GoProgram(dest="/pause", source="pause"),),
    config=OciConfig(entrypoint=("/pause",), user="65535:65535", workdir="/"),
)

# registry 2.8.x cannot be built from the module proxy (v2.8.x has no go.mod and needs rsc.io/letsencrypt,
# which the proxy refuses); distribution v3.0.0 serves the same HTTP API and reads the same config.
REGISTRY = Recipe(
    name="registry",
    ref="registry:2.8.1",
    suite=None,
    go=(
        GoProgram(
            dest="/bin/registry",
            package="github.com/distribution/distribution/v3/cmd/registry",
            module="github.com/distribution/distribution/v3",
            version="v3.0.0",
            ldflags="-s -w -X github.com/distribution/distribution/v3/version.version=v3.0.0",
        ),
    ),
    files=(("/etc/docker/registry/config.yml", REGISTRY_CONFIG),),
    # The official image's entrypoint script turns a config path into `registry serve PATH`; without a
    # shell in the image, the same as ENTRYPOINT and CMD. The chart runs /bin/registry serve itself.
    config=OciConfig(entrypoint=("/bin/registry",), cmd=("serve", "/etc/docker/registry/config.yml"), ports=("5000",)),
)

HUB = Recipe(
    name="hub",
    ref="quay.io/jupyterhub/k8s-hub:4.2.0",
    # k8s-hub is the Dockerfile's default-stage: slim-stage's packages plus curl, dnsutils, git, less, vim.
    packages=(
        "python3",
        "python3-venv",
        "libcurl4",
        "libpq5",
        "sqlite3",
        "tini",
        "ca-certificates",
        "curl",
        "dnsutils",
        "git",
        "less",
        "vim",
    ),
    # The Dockerfile's build stage compiles pycurl (--no-binary) and psycopg2, which has no wheels.
    build_packages=("gcc", "python3-dev", "libcurl4-openssl-dev", "libssl-dev", "libpq-dev"),
    requirements="k8s-hub",
    steps=(
        ADD_JOVYAN,
        f"python3 -m venv {VENV}",
        f"{PIP} --no-binary pycurl -r /tmp/devstack-build/requirements.txt py-spy",
        "mkdir -p /srv/jupyterhub && chown jovyan:jovyan /srv/jupyterhub",
    ),
    config=OciConfig(
        entrypoint=("tini", "--"),
        cmd=("jupyterhub", "--config", "/usr/local/etc/jupyterhub/jupyterhub_config.py"),
        user="jovyan",
        workdir="/srv/jupyterhub",
        env=(("PATH", DEFAULT_PATH), ("LANG", "C.UTF-8"), ("DEBIAN_FRONTEND", "noninteractive")),
        ports=("8081",),
    ),
)

CHP = Recipe(
    name="configurable-http-proxy",
    ref="quay.io/jupyterhub/configurable-http-proxy:4.6.3",
    packages=("nodejs", "tini", "ca-certificates"),
    # Debian's npm brings many node-* packages; it is needed only to install.
    build_packages=("npm",),
    steps=("npm install --global --omit=dev --no-fund --no-audit configurable-http-proxy@4.6.3",),
    # The upstream image runs as nobody and exposes the proxy (8000) and its API (8001).
    config=OciConfig(
        entrypoint=("tini", "--", "configurable-http-proxy"),
        user="65534",
        workdir="/",
        env=(("PATH", DEFAULT_PATH),),
        ports=("8000", "8001"),
    ),
)

SINGLEUSER = Recipe(
    name="singleuser",
    ref="quay.io/jupyterhub/k8s-singleuser-sample:4.2.0",
    packages=("python3", "python3-venv", "ca-certificates", "dnsutils", "iputils-ping", "tini", "git"),
    build_packages=("gcc", "python3-dev"),
    requirements="k8s-singleuser-sample",
    steps=(ADD_JOVYAN, f"python3 -m venv {VENV}", f"{PIP} -r /tmp/devstack-build/requirements.txt"),
    config=OciConfig(
        entrypoint=("tini", "--"),
        cmd=("jupyter", "lab"),
        user="jovyan",
        workdir="/home/jovyan",
        env=(
            ("PATH", DEFAULT_PATH),
            ("LANG", "C.UTF-8"),
            ("NB_USER", "jovyan"),
            ("NB_UID", "1000"),
            ("HOME", "/home/jovyan"),
        ),
        ports=("8888",),
    ),
)

# What podman needs to run the builds BinderHub sends it from inside a pod, privileged and without
# systemd: cgroupfs rather than systemd's cgroup manager, and events to a file rather than the journal.
PODMAN_CONTAINERS_CONF = """\
[containers]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

# BinderHub's builder for imageBuilderType pink: its DaemonSet runs `podman system service` as root,
# privileged. trixie's podman is 5.x, as the chart's quay.io/podman/stable:v5.8.1 is; bookworm has 4.3.
PODMAN = Recipe(
    name="podman",
    ref="quay.io/podman/stable:v5.8.1",
    suite="trixie",
    packages=(
        "podman",
        "crun",
        "conmon",
        "netavark",
        "aardvark-dns",
        "iptables",
        "fuse-overlayfs",
        "uidmap",
        "catatonit",
        "ca-certificates",
    ),
    files=(("/etc/containers/containers.conf", PODMAN_CONTAINERS_CONF),),
    config=OciConfig(cmd=("podman", "info"), workdir="/", env=(("PATH", DEFAULT_PATH),)),
)

# The frozen requirements of docker-image-cleaner's own image at its tag 1.0.0-beta.3; every one has a
# wheel for bookworm's Python 3.11, so nothing is compiled.
IMAGE_CLEANER_PINS = (
    "docker-image-cleaner==1.0.0b3",
    "cachetools==5.2.0",
    "certifi==2022.9.24",
    "charset-normalizer==2.1.1",
    "docker==6.0.1",
    "google-auth==2.14.0",
    "idna==3.4",
    "kubernetes==25.3.0",
    "oauthlib==3.2.2",
    "packaging==21.3",
    "pyasn1==0.4.8",
    "pyasn1-modules==0.2.8",
    "pyparsing==3.0.9",
    "python-dateutil==2.8.2",
    "pyyaml==6.0",
    "requests==2.28.1",
    "requests-oauthlib==1.3.1",
    "rsa==4.9",
    "six==1.16.0",
    "urllib3==1.26.12",
    "websocket-client==1.4.1",
)

# BinderHub's image cleaner: a DaemonSet that deletes the builder's images when its disk fills up,
# talking to the builder (podman here) through DOCKER_HOST; it cordons the node meanwhile.
IMAGE_CLEANER = Recipe(
    name="image-cleaner",
    ref="quay.io/jupyterhub/docker-image-cleaner:1.0.0-beta.3",
    packages=("python3", "python3-venv", "tini", "ca-certificates"),
    steps=(
        f"python3 -m venv {VENV}",
        f"{PIP} --only-binary=:all: " + " ".join(IMAGE_CLEANER_PINS),
        # As upstream checks its images: a broken install fails the build, not the pod.
        f"{VENV}/bin/pip check",
        f"{VENV}/bin/python -c 'import docker, kubernetes.client, docker_image_cleaner.cleaner'",
    ),
    # The upstream image runs as root (it reads the builder's socket and storage) with tini in front.
    config=OciConfig(
        entrypoint=("tini", "--", "docker-image-cleaner"),
        workdir="/",
        env=(("PATH", DEFAULT_PATH), ("PYTHONUNBUFFERED", "1")),
    ),
)

# --- The console itself, which its own chart (charts/binderadmin) runs ------------------------------

CONSOLE_HOME = "/srv/binderadmin"
# What of the repository the console runs: its code, templates, static files and pinned requirements.
CONSOLE_SOURCES = ("manage.py", "requirements.txt", "binderadmin", "platforms", "templates", "static")
# Production settings refuse to start without their secrets; collectstatic reads none of them.
COLLECTSTATIC_ENV = " ".join(
    f"{name}=unused-at-build"
    for name in ("DJANGO_SECRET_KEY", "KEYCLOAK_ADMIN_CLIENT_SECRET", "OIDC_RP_CLIENT_SECRET", "FIELD_ENCRYPTION_KEYS")
)


def console_files() -> tuple[tuple[str, str], ...]:
    """The console's files at their place in the image; being part of the recipe, a change of code rebuilds it."""
    paths = []
    for name in CONSOLE_SOURCES:
        path = config.REPO_DIR / name
        paths += [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return tuple(
        (f"{CONSOLE_HOME}/{path.relative_to(config.REPO_DIR)}", path.read_text())
        for path in paths
        if "__pycache__" not in path.parts
    )


# The web server (gunicorn) and the worker (qcluster) in one image; the chart gives the command. Static
# files are collected here and served by WhiteNoise, so the root filesystem can be read-only.
CONSOLE = Recipe(
    name="binderadmin",
    ref="localhost/binderadmin:0.1.0",
    packages=("python3", "python3-venv", "tini", "ca-certificates"),
    files=console_files(),
    # The worker runs helm; the same pinned helm as the local stack's.
    go=(
        GoProgram(
            dest="/usr/local/bin/helm",
            package="helm.sh/helm/v3/cmd/helm",
            module="helm.sh/helm/v3",
            version=config.HELM_VERSION,
            ldflags=(
                f"-X helm.sh/helm/v3/internal/version.version={config.HELM_VERSION} "
                "-X helm.sh/helm/v3/internal/version.gitTreeState=clean"
            ),
        ),
    ),
    steps=(
        "useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin binderadmin",
        f"python3 -m venv {VENV}",
        f"{PIP} --only-binary=:all: -r {CONSOLE_HOME}/requirements.txt",
        f"{VENV}/bin/pip check",
        f"cd {CONSOLE_HOME} && BINDERADMIN_PRODUCTION=1 {COLLECTSTATIC_ENV} python manage.py collectstatic --noinput",
        f"python -m compileall -q {CONSOLE_HOME}",
    ),
    config=OciConfig(
        entrypoint=("tini", "--"),
        cmd=("gunicorn", "binderadmin.wsgi", "--bind=0.0.0.0:8000", "--no-control-socket"),
        user="10001:10001",
        workdir=CONSOLE_HOME,
        env=(
            ("PATH", DEFAULT_PATH),
            ("LANG", "C.UTF-8"),
            ("PYTHONUNBUFFERED", "1"),
            ("PYTHONDONTWRITEBYTECODE", "1"),
            ("HOME", "/tmp"),
        ),
        ports=("8000",),
    ),
)

RECIPES: dict[str, Recipe] = {
    recipe.name: recipe for recipe in (PAUSE, REGISTRY, HUB, CHP, SINGLEUSER, PODMAN, IMAGE_CLEANER, CONSOLE)
}
