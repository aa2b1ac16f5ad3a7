"""Packages the application chart at each published version and serves it as a Helm chart repository."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from devstack import config, procs
from devstack.procs import DevstackError

NAME = "chart-repo"


def index_url() -> str:
    return f"{config.CHART_REPO_URL}/index.yaml"


def ready() -> bool:
    return procs.http_ok(index_url())


def _newest_source(chart_dir: Path) -> float:
    # Folders count too: deleting a template changes its folder's mtime but leaves no file behind.
    return max(path.stat().st_mtime for path in [chart_dir, *chart_dir.rglob("*")])


def is_fresh(folder: Path, chart_dir: Path, versions: tuple[str, ...], url: str) -> bool:
    """True when folder's index lists exactly `versions` at `url` and is newer than the chart's files."""
    index = folder / "index.yaml"
    try:
        built = index.stat().st_mtime
        document = yaml.safe_load(index.read_text())
        entries = document["entries"][chart_dir.name]
        published = sorted(entry["version"] for entry in entries)
        urls = [u for entry in entries for u in entry.get("urls", [])]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return False
    if published != sorted(versions) or not all(u.startswith(url + "/") for u in urls):
        return False
    try:
        return built >= _newest_source(chart_dir)
    except OSError:
        return False


def build(
    helm: Path,
    folder: Path = config.CHART_REPO_DIR,
    chart_dir: Path = config.APP_CHART_DIR,
    versions: tuple[str, ...] = config.APP_CHART_VERSIONS,
    url: str = config.CHART_REPO_URL,
) -> Path:
    """Package the chart (its dependencies are vendored in it) at each version into folder with an index.yaml.

    Does nothing when the index is already current. Works offline.
    """
    if is_fresh(folder, chart_dir, versions, url):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the served folder and swap it in, so the server never lists a half-built repository;
    # unique names, so that two `up`s at once cannot trip over each other's half-built folders.
    partial = Path(tempfile.mkdtemp(prefix=folder.name + ".partial-", dir=folder.parent))
    partial.chmod(0o755)  # mkdtemp makes it private; the repository is public on loopback anyway
    try:
        for version in versions:
            _helm(helm, ["package", str(chart_dir), "--version", version, "--destination", str(partial)], version)
        _helm(helm, ["repo", "index", str(partial), "--url", url], "index")
        _swap_in(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _swap_in(partial: Path, folder: Path) -> None:
    old = Path(tempfile.mkdtemp(prefix=folder.name + ".old-", dir=folder.parent))
    try:
        if folder.exists():
            folder.rename(old / "repo")
        try:
            partial.rename(folder)
        except OSError:
            # Another build swapped its (equivalent) repository in meanwhile: keep that one.
            if not folder.exists():
                raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _helm(helm: Path, args: list[str], what: str) -> None:
    result = subprocess.run([str(helm), *args], capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"exit {result.returncode}"
        raise DevstackError(f"`helm {args[0]}` of the chart ({what}) failed: {reason}")


def up(folder: Path = config.CHART_REPO_DIR) -> None:
    """Serve folder on the chart repository port unless already served; return once index.yaml answers."""
    if not procs.running_pid(NAME):
        procs.check_port_free(NAME, config.PORTS.chart_repo)
        procs.start(
            NAME,
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                config.HOST,
                str(config.PORTS.chart_repo),
                "--directory",
                str(folder),
            ],
        )
    procs.wait_until(NAME, ready, 30, "serving index.yaml")
