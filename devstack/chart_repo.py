"""Packages the application chart at each published version and serves it as a Helm chart repository."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from devstack import config, procs
from devstack.procs import DevstackError

NAME = "chart-repo"
# Folders and files that `helm dependency build` generates in a chart: never sources.
GENERATED = ("charts", "Chart.lock")


def index_url() -> str:
    return f"{config.CHART_REPO_URL}/index.yaml"


def ready() -> bool:
    return procs.http_ok(index_url())


def local_dependencies(chart_dir: Path) -> list[Path]:
    """The charts chart_dir depends on through `file://` repositories, recursively, dependencies first."""
    found: list[Path] = []

    def visit(folder: Path) -> None:
        try:
            chart = yaml.safe_load((folder / "Chart.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            return  # helm reports a broken chart more clearly than we could
        for dependency in chart.get("dependencies") or []:
            repository = str(dependency.get("repository", ""))
            if repository.startswith("file://"):
                target = (folder / repository.removeprefix("file://")).resolve()
                if target not in found:
                    visit(target)
                    found.append(target)

    visit(chart_dir.resolve())
    return found


def _newest_source(chart_dir: Path) -> float:
    # Folders count too: deleting a template changes its folder's mtime but leaves no file behind.
    charts = [chart_dir, *local_dependencies(chart_dir)]
    return max(path.stat().st_mtime for chart in charts for path in [chart, *chart.rglob("*")])


def is_fresh(folder: Path, chart_dir: Path, versions: tuple[str, ...], url: str) -> bool:
    """True when folder's index lists exactly `versions` at `url` and is newer than the chart and its stand-ins."""
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
    """Package the chart with its stand-in dependencies at each version into folder with an index.yaml.

    Does nothing when the index is already current. Works offline: the dependencies are `file://` charts.
    """
    if is_fresh(folder, chart_dir, versions, url):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the served folder and swap it in, so the server never lists a half-built repository;
    # unique names, so that two `up`s at once cannot trip over each other's half-built folders.
    partial = Path(tempfile.mkdtemp(prefix=folder.name + ".partial-", dir=folder.parent))
    partial.chmod(0o755)  # mkdtemp makes it private; the repository is public on loopback anyway
    try:
        with tempfile.TemporaryDirectory(prefix="charts-", dir=folder.parent) as work:
            chart = _vendor_dependencies(helm, chart_dir, Path(work))
            for version in versions:
                _helm(helm, ["package", str(chart), "--version", version, "--destination", str(partial)], version)
        _helm(helm, ["repo", "index", str(partial), "--url", url], "index")
        _swap_in(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _vendor_dependencies(helm: Path, chart_dir: Path, work: Path) -> Path:
    """Copy the chart and its local dependencies into work and `helm dependency build` each; return the copy.

    Working on a copy keeps generated charts/ folders and Chart.lock files out of the source tree, and
    drops any stale ones a developer left there.
    """
    charts = [*local_dependencies(chart_dir), chart_dir.resolve()]
    root = Path(os.path.commonpath(charts))
    for source in charts:
        shutil.copytree(source, work / source.relative_to(root), ignore=_generated_in(source))
    for source in charts:  # dependencies first, so each is complete before a chart that needs it
        copy = work / source.relative_to(root)
        if _has_dependencies(copy):
            # --skip-refresh: file:// dependencies need no repository index, and these machines may be offline.
            _helm(helm, ["dependency", "build", str(copy), "--skip-refresh"], source.name)
    return work / chart_dir.resolve().relative_to(root)


def _generated_in(chart_dir: Path):
    """A copytree ignore function that skips what helm generates at the top of chart_dir."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [name for name in names if name in GENERATED] if Path(folder) == chart_dir else []

    return ignore


def _has_dependencies(chart_dir: Path) -> bool:
    try:
        return bool((yaml.safe_load((chart_dir / "Chart.yaml").read_text()) or {}).get("dependencies"))
    except (OSError, yaml.YAMLError):
        return False


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
        command = " ".join(args[:2]) if args[0] == "dependency" else args[0]
        raise DevstackError(f"`helm {command}` of the chart ({what}) failed: {reason}")


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
