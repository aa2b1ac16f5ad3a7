"""The local chart repository is rebuilt only when its chart changed, and a helm failure is one clear line."""

import os
import shutil
import tarfile

import pytest
import yaml

from devstack import chart_repo, config
from devstack.procs import DevstackError

URL = "http://127.0.0.1:18081"
VERSIONS = ("0.1.0", "0.2.0")


@pytest.fixture
def chart(tmp_path):
    # The application chart, with the upstream charts vendored in its charts/.
    charts = tmp_path / "charts"
    shutil.copytree(config.APP_CHART_DIR.parent, charts)
    return charts / config.APP_CHART_NAME


def fake_helm(tmp_path, failing: str):
    """A helm that succeeds silently, except for the subcommand `failing`, which fails like helm does."""
    helm = tmp_path / "helm"
    helm.write_text(
        f'#!/bin/sh\nif [ "$1" = "{failing}" ]; then\n'
        "echo 'some detail' >&2\necho 'Error: Chart.yaml file is missing' >&2\nexit 1\nfi\n"
    )
    helm.chmod(0o755)
    return helm


def write_index(folder, versions=VERSIONS, url=URL, name="binderhub-platform"):
    folder.mkdir(exist_ok=True)
    entries = [{"name": name, "version": v, "urls": [f"{url}/{name}-{v}.tgz"]} for v in versions]
    (folder / "index.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "entries": {name: entries}}))


def age(path, seconds: float) -> None:
    for item in [path, *path.rglob("*")]:
        stat = item.stat()
        os.utime(item, (stat.st_atime - seconds, stat.st_mtime - seconds))


def test_an_index_newer_than_the_chart_with_the_right_versions_is_fresh(tmp_path, chart):
    age(chart, 60)
    write_index(tmp_path / "repo")
    assert chart_repo.is_fresh(tmp_path / "repo", chart, VERSIONS, URL)


def test_editing_the_chart_makes_the_index_stale(tmp_path, chart):
    write_index(tmp_path / "repo")
    age(tmp_path / "repo", 60)
    (chart / "values.yaml").write_text("{}\n")
    assert not chart_repo.is_fresh(tmp_path / "repo", chart, VERSIONS, URL)


@pytest.mark.parametrize(
    "versions, url", [(("0.1.0",), URL), (("0.1.0", "0.2.0", "0.3.0"), URL), (VERSIONS, "http://127.0.0.1:9")]
)
def test_other_versions_or_another_url_make_the_index_stale(tmp_path, chart, versions, url):
    age(chart, 60)
    write_index(tmp_path / "repo", versions=versions, url=url)
    assert not chart_repo.is_fresh(tmp_path / "repo", chart, VERSIONS, URL)


def test_a_missing_or_broken_index_is_stale(tmp_path, chart):
    assert not chart_repo.is_fresh(tmp_path / "repo", chart, VERSIONS, URL)
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "index.yaml").write_text("entries: [")
    assert not chart_repo.is_fresh(tmp_path / "repo", chart, VERSIONS, URL)


def test_replacing_a_vendored_chart_makes_the_index_stale(tmp_path, chart):
    write_index(tmp_path / "repo")
    age(chart.parent, 60)
    age(tmp_path / "repo", 30)
    assert chart_repo.is_fresh(tmp_path / "repo", chart, VERSIONS, URL)
    (chart / "charts" / "docker-registry-2.2.3.tgz").touch()
    assert not chart_repo.is_fresh(tmp_path / "repo", chart, VERSIONS, URL)


def test_a_helm_package_failure_is_one_clear_line_and_leaves_the_old_repo(tmp_path, chart):
    write_index(tmp_path / "repo", versions=("9.9.9",))
    with pytest.raises(DevstackError) as caught:
        chart_repo.build(fake_helm(tmp_path, "package"), tmp_path / "repo", chart, VERSIONS, URL)
    assert str(caught.value) == "`helm package` of the chart (0.1.0) failed: Error: Chart.yaml file is missing"
    assert "9.9.9" in (tmp_path / "repo" / "index.yaml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["charts", "helm", "repo"]  # no half-built leftovers


def test_build_packages_each_version_with_the_real_charts_inside(tmp_path, chart):
    helm = config.BIN_DIR / f"helm-{config.HELM_VERSION}"
    if not helm.exists():
        pytest.skip("the pinned helm is not built yet (python -m devstack up builds it)")
    folder = chart_repo.build(helm, tmp_path / "repo", chart, VERSIONS, URL)
    assert chart_repo.is_fresh(folder, chart, VERSIONS, URL)
    with tarfile.open(folder / "binderhub-platform-0.2.0.tgz") as archive:
        names = set(archive.getnames())
    assert "binderhub-platform/charts/binderhub/templates/deployment.yaml" in names
    assert "binderhub-platform/charts/binderhub/charts/jupyterhub/templates/hub/deployment.yaml" in names
    assert "binderhub-platform/charts/docker-registry/templates/deployment.yaml" in names
