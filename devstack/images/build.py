"""Builds an image from a recipe into a docker-archive, once per content of the recipe."""

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from devstack import config, tools
from devstack.images import recipes
from devstack.images.recipes import GoProgram, OciConfig, Recipe
from devstack.procs import DevstackError

IMAGES_DIR = config.CACHE_DIR / "images"
# Raise when the way recipes are turned into images changes, so cached archives are rebuilt.
BUILDER_VERSION = "1"
UMOCI_VERSION = "v0.6.0"
# umoci's go.mod replaces go-mtree with a fork; go install refuses such modules, so we build it in a
# module of our own that repeats the replacement.
UMOCI_REPLACES = (("github.com/vbatts/go-mtree", "github.com/cyphar/go-mtree v0.0.0-20250928235313-918fa724e2fe"),)
DEBIAN_MIRROR = os.environ.get("DEVSTACK_DEBIAN_MIRROR", "http://deb.debian.org/debian").rstrip("/")
DEBIAN_SECURITY = os.environ.get("DEVSTACK_DEBIAN_SECURITY", "http://deb.debian.org/debian-security").rstrip("/")
# The machine's trust store: package downloads inside the build may pass through a TLS proxy that
# only the machine's store trusts, so the steps use a copy of it, removed before the image is packed.
HOST_CA = Path(os.environ.get("DEVSTACK_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
BUILD_DIR = "/tmp/devstack-build"
BUILD_CA = f"{BUILD_DIR}/ca-certificates.crt"
# Docs, manuals and translations are not needed in a container, as in Debian's slim images.
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    archive: Path
    size: int
    seconds: float
    cached: bool


# --- pure parts ---


def canonical_ref(ref: str) -> str:
    """The name containerd stores `ref` under: Docker Hub's short names get docker.io/library/."""
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        raise ValueError(f"{ref!r} has no tag; the charts always name a tag")
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return f"{name}:{tag}"


def recipe_inputs(recipe: Recipe) -> dict[str, bytes]:
    """The files a recipe reads besides itself, by name: upstream requirements and our Go sources."""
    inputs = {}
    if recipe.requirements:
        path = recipes.UPSTREAM_IMAGES / recipe.requirements / "requirements.txt"
        try:
            inputs[f"{recipe.requirements}/requirements.txt"] = path.read_bytes()
        except OSError as exc:
            raise DevstackError(
                f"{recipe.name}: the upstream requirements {path} cannot be read ({exc.strerror}); "
                "set DEVSTACK_UPSTREAM_IMAGES to the folder holding the upstream image recipes."
            ) from None
    for program in recipe.go:
        if program.source:
            folder = recipes.PAUSE_SOURCE.parent / program.source
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    inputs[str(path.relative_to(folder.parent))] = path.read_bytes()
    return inputs


def recipe_key(recipe: Recipe, inputs: dict[str, bytes]) -> str:
    """A hash of everything that decides the image's content: the recipe, the files it reads, the builder."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"builder": BUILDER_VERSION, "recipe": asdict(recipe)}, sort_keys=True).encode())
    for name in sorted(inputs):
        digest.update(f"\0{name}\0{len(inputs[name])}\0".encode())
        digest.update(inputs[name])
    return digest.hexdigest()


def archive_path(recipe: Recipe, key: str, images_dir: Path | None = None) -> Path:
    return (images_dir or IMAGES_DIR) / f"{recipe.name}-{key[:16]}.tar"


def cached_archive(recipe: Recipe, key: str, images_dir: Path | None = None) -> Path | None:
    """The archive built from this exact recipe, if there is one; a half-written one never counts."""
    path = archive_path(recipe, key, images_dir)
    return path if path.is_file() and path.with_suffix(".json").is_file() else None


def umoci_config_args(oci: OciConfig) -> list[str]:
    """`umoci config` options that set what the recipe's Dockerfile sets, clearing umoci's defaults."""
    args = ["--clear=config.entrypoint", "--clear=config.cmd", "--clear=config.env"]
    args += [f"--config.entrypoint={part}" for part in oci.entrypoint]
    args += [f"--config.cmd={part}" for part in oci.cmd]
    if oci.user:
        args.append(f"--config.user={oci.user}")
    if oci.workdir:
        args.append(f"--config.workingdir={oci.workdir}")
    args += [f"--config.env={key}={value}" for key, value in oci.env]
    args += [f"--config.exposedports={port if '/' in port else port + '/tcp'}" for port in oci.ports]
    return args


def step_command(step: str, environ: dict[str, str] | None = None) -> str:
    """The mmdebstrap hook that runs one shell step inside the root filesystem, with the build's trust store."""
    env = {
        "HOME": "/root",
        "PATH": recipes.DEFAULT_PATH,
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
        "SSL_CERT_FILE": BUILD_CA,
        "PIP_CERT": BUILD_CA,
        "REQUESTS_CA_BUNDLE": BUILD_CA,
        "NODE_EXTRA_CA_CERTS": BUILD_CA,
        "npm_config_cafile": BUILD_CA,
    }
    # A proxy the machine is told to use is needed inside too.
    for key, value in (environ if environ is not None else os.environ).items():
        if key.lower() in ("http_proxy", "https_proxy", "no_proxy"):
            env[key] = value
    assignments = " ".join(shlex.quote(f"{key}={value}") for key, value in env.items())
    return f'chroot "$1" /usr/bin/env -i {assignments} /bin/sh -euxc {shlex.quote(step)}'


def mmdebstrap_argv(recipe: Recipe, overlay: Path, rootfs: Path, environ: dict[str, str] | None = None) -> list[str]:
    """The mmdebstrap command that makes the recipe's Debian root filesystem and runs its steps in it."""
    if recipe.suite is None:
        raise ValueError(f"{recipe.name} has no Debian root filesystem")
    suite = recipe.suite
    argv = ["mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory"]
    if recipe.packages:
        argv.append("--include=" + ",".join(recipe.packages))
    argv += [f"--dpkgopt={option}" for option in DPKG_EXCLUDES]
    hooks = [f'cp -a {shlex.quote(str(overlay))}/. "$1"/']
    if recipe.build_packages:
        hooks.append(step_command("apt-get install --yes --no-install-recommends " + " ".join(recipe.build_packages)))
    hooks += [step_command(step, environ) for step in recipe.steps]
    if recipe.build_packages:
        hooks.append(step_command("apt-get purge --yes --auto-remove " + " ".join(recipe.build_packages)))
    # mmdebstrap leaves the machine's resolv.conf and hostname inside; the runtime mounts its own.
    hooks.append(
        f'rm -rf "$1"{BUILD_DIR} "$1"/root/.cache "$1"/root/.npm && : > "$1"/etc/resolv.conf && : > "$1"/etc/hostname'
    )
    argv += [f"--customize-hook={hook}" for hook in hooks]
    argv += [
        suite,
        str(rootfs),
        f"deb {DEBIAN_MIRROR} {suite} main",
        f"deb {DEBIAN_MIRROR} {suite}-updates main",
        f"deb {DEBIAN_SECURITY} {suite}-security main",
    ]
    return argv


# --- building ---


def build(recipe: Recipe, force: bool = False) -> BuiltImage:
    """The recipe's image as a docker-archive tagged with its chart reference; built only if its recipe changed.

    Raises DevstackError with the log's path when a step fails.
    """
    inputs = recipe_inputs(recipe)
    key = recipe_key(recipe, inputs)
    archive = cached_archive(recipe, key)
    if archive and not force:
        return _built(recipe, archive, cached=True)
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"devstack: building image {recipe.ref} (first time only; minutes)...", flush=True)
    with tempfile.TemporaryDirectory(dir=IMAGES_DIR, prefix=f"work-{recipe.name}-") as work:
        work_dir = Path(work)
        overlay = _overlay(recipe, inputs, work_dir / "overlay")
        rootfs = work_dir / "rootfs"
        if recipe.suite is None:
            rootfs = overlay
        else:
            tools_needed(["mmdebstrap"])
            _run(recipe, mmdebstrap_argv(recipe, overlay, rootfs))
        layer = work_dir / "layer.tar"
        # /dev, /proc and /sys are the runtime's to fill; mmdebstrap leaves device nodes in /dev.
        excludes = ["--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*"]
        tar = ["tar", "--create", f"--file={layer}", "--numeric-owner", "--sort=name", "--xattrs", *excludes]
        _run(recipe, [*tar, "--xattrs-include=*", f"--directory={rootfs}", "."])
        archive = archive_path(recipe, key)
        _pack(recipe, layer, work_dir / "oci", archive)
    seconds = round(time.monotonic() - started, 1)
    meta = {"ref": recipe.ref, "key": key, "seconds": seconds, "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    archive.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    _remove_stale(recipe, keep=archive)
    return BuiltImage(recipe.ref, archive, archive.stat().st_size, seconds, cached=False)


def _built(recipe: Recipe, archive: Path, cached: bool) -> BuiltImage:
    try:
        seconds = float(json.loads(archive.with_suffix(".json").read_text()).get("seconds", 0))
    except (OSError, ValueError):
        seconds = 0.0
    return BuiltImage(recipe.ref, archive, archive.stat().st_size, seconds, cached)


def _overlay(recipe: Recipe, inputs: dict[str, bytes], overlay: Path) -> Path:
    """The files the recipe adds, laid out as in the image, plus what its steps read under BUILD_DIR."""
    overlay.mkdir(parents=True)
    overlay.chmod(0o755)
    for dest, text in recipe.files:
        _put(overlay, dest, text.encode(), 0o644)
    for program in recipe.go:
        _put(overlay, program.dest, go_program(program).read_bytes(), 0o755)
    if recipe.suite is not None:
        build_dir = overlay / BUILD_DIR.lstrip("/")
        build_dir.mkdir(parents=True)
        shutil.copyfile(HOST_CA, build_dir / "ca-certificates.crt")
        if recipe.requirements:
            (build_dir / "requirements.txt").write_bytes(inputs[f"{recipe.requirements}/requirements.txt"])
    return overlay


def _put(root: Path, dest: str, data: bytes, mode: int) -> None:
    path = root / dest.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(root).parents:
        (root / parent).chmod(0o755)
    path.write_bytes(data)
    path.chmod(mode)


def _pack(recipe: Recipe, layer: Path, layout: Path, archive: Path) -> None:
    """One-layer OCI image by umoci, then a docker-archive named with the chart's reference by skopeo."""
    tools_needed(["skopeo"])
    umoci = str(umoci_binary())
    image = f"{layout}:{recipe.name}"
    _run(recipe, [umoci, "init", f"--layout={layout}"])
    _run(recipe, [umoci, "new", f"--image={image}"])
    _run(recipe, [umoci, "raw", "add-layer", f"--image={image}", str(layer)])
    _run(recipe, [umoci, "config", f"--image={image}", *umoci_config_args(recipe.config)])
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    _run(recipe, ["skopeo", "copy", f"oci:{image}", f"docker-archive:{partial}:{canonical_ref(recipe.ref)}"])
    partial.rename(archive)


def _remove_stale(recipe: Recipe, keep: Path) -> None:
    # Archives from older versions of the recipe are dead weight of hundreds of MB each.
    for path in IMAGES_DIR.glob(f"{recipe.name}-*.tar"):
        if path != keep and len(path.stem) == len(keep.stem):
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)


def _run(recipe: Recipe, argv: list[str]) -> None:
    log = config.LOG_DIR / f"image-{recipe.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n--- {shlex.join(argv)}\n".encode())
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        step = shlex.join(argv[:2])
        raise DevstackError(f"building image {recipe.ref} failed at `{step}` (exit {result.returncode}); see {log}")


# --- tools ---


def tools_needed(commands: list[str]) -> None:
    """Install Debian's packages for missing commands (mmdebstrap, skopeo), which needs root."""
    missing = [command for command in commands if not shutil.which(command)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise DevstackError(f"building images needs {', '.join(missing)}: run `apt-get install {' '.join(missing)}`.")
    print(f"devstack: installing {', '.join(missing)} from Debian (first time only)...", flush=True)
    result = subprocess.run(
        ["apt-get", "install", "--yes", "--no-install-recommends", *missing],
        capture_output=True,
        text=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if result.returncode != 0:
        raise DevstackError(f"apt-get install {' '.join(missing)} failed: {result.stderr.strip()[-300:]}")


def umoci_binary() -> Path:
    """umoci at UMOCI_VERSION, built from the Go module proxy once."""
    return go_program(
        GoProgram(
            dest="umoci",
            package="github.com/opencontainers/umoci/cmd/umoci",
            module="github.com/opencontainers/umoci",
            version=UMOCI_VERSION,
            replaces=UMOCI_REPLACES,
        )
    )


def go_program(program: GoProgram) -> Path:
    """A static build of the program, cached in the devstack's bin folder by package and version."""
    if program.source:
        source = recipes.PAUSE_SOURCE.parent / program.source
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(source.glob("*.go")))).hexdigest()[:12]
        name = f"{program.source}-{digest}"
    else:
        name = f"{program.package.rsplit('/', 1)[-1]}-{program.version}"
    target = config.BIN_DIR / name
    if target.exists():
        return target
    config.BIN_DIR.mkdir(parents=True, exist_ok=True)
    go = tools.go_executable()
    with tempfile.TemporaryDirectory(dir=config.BIN_DIR) as module:
        partial = target.with_name(target.name + ".partial")
        build = [go, "build", "-trimpath", "-ldflags", program.ldflags, "-o", str(partial)]
        env = {"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
        Path(module, "go.mod").write_text(go_mod(program))
        if program.source:
            for path in sorted(source.glob("*.go")):
                shutil.copyfile(path, Path(module, path.name))
            tools._run_build([*build, "."], f"{name}", cwd=Path(module), env=env)
        else:
            tools._run_build([go, "get", f"{program.package}@{program.version}"], name, cwd=Path(module), env=env)
            tools._run_build([*build, program.package], name, cwd=Path(module), env=env)
        partial.rename(target)
    return target


def go_mod(program: GoProgram) -> str:
    """The go.mod of the throwaway module a program is built in."""
    name = program.source or program.package.rsplit("/", 1)[-1]
    lines = [f"module devstack.local/{name}", "", "go 1.24", ""]
    lines += [f"replace {old} => {new}" for old, new in program.replaces]
    return "\n".join(lines) + "\n"
