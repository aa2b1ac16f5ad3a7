"""The App versions come from a chart repository's index.yaml, newest first, cached, errors made readable."""

import http.server
import socket
import threading
from functools import partial

import pytest
from django.core.cache import cache

from platforms.services import charts
from platforms.services.charts import ChartRepository, app_versions
from platforms.services.errors import BadInput, NotFound, Unavailable

CHART = "binderhub-platform"


def index(*versions: str, chart: str = CHART) -> str:
    lines = ["apiVersion: v1", "entries:", f"  {chart}:"]
    for version in versions:
        lines += [
            f"  - name: {chart}",
            f"    version: {version!r}" if version else "    version: ''",
            f"    urls: [http://example.invalid/{chart}-{version}.tgz]",
        ]
    return "\n".join([*lines, "generated: '2025-01-01T00:00:00Z'", ""])


class Repo:
    """A real HTTP server on loopback serving one folder, counting the requests it answers."""

    def __init__(self, folder):
        self.folder = folder
        self.requests = 0
        repo = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                repo.requests += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def publish(self, text: str) -> None:
        (self.folder / "index.yaml").write_text(text)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def repo(tmp_path):
    server = Repo(tmp_path)
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    charts.get_chart_repository.cache_clear()
    yield
    cache.clear()
    charts.get_chart_repository.cache_clear()


@pytest.fixture
def app_settings(settings, repo):
    settings.APP_CHART_REPO_URL = repo.url
    settings.APP_CHART_NAME = CHART
    settings.APP_VERSIONS_INCLUDE_PRERELEASES = False
    settings.APP_VERSIONS_CACHE_SECONDS = 300
    return settings


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_versions_are_newest_first_by_semantic_version(repo):
    repo.publish(index("0.2.0", "0.10.0", "0.9.0", "1.0.0+build.5"))
    assert ChartRepository(repo.url).versions(CHART) == ["1.0.0+build.5", "0.10.0", "0.9.0", "0.2.0"]


def test_prereleases_are_hidden_unless_asked(repo):
    repo.publish(index("0.1.0", "0.2.0", "0.3.0-rc.1", "0.3.0-rc.2", "0.2.0-alpha"))
    repository = ChartRepository(repo.url + "/")  # a trailing slash in the setting is harmless
    assert repository.versions(CHART) == ["0.2.0", "0.1.0"]
    assert repository.versions(CHART, include_prereleases=True) == [
        "0.3.0-rc.2",
        "0.3.0-rc.1",
        "0.2.0",
        "0.2.0-alpha",
        "0.1.0",
    ]


def test_versions_that_are_not_semver_are_skipped(repo):
    repo.publish(index("latest", "1.0", "v2.0.0", "", "0.5.0", "01.2.3"))
    assert ChartRepository(repo.url).versions(CHART) == ["0.5.0"]


def test_other_charts_in_the_repository_are_ignored(repo):
    other = index("9.9.9", chart="other").split("entries:\n", 1)[1].split("generated:")[0]
    repo.publish(index("0.1.0").replace("generated:", other + "generated:"))
    assert ChartRepository(repo.url).versions(CHART) == ["0.1.0"]


@pytest.mark.parametrize("text", ["entries: [", "just words", "- a list\n", "apiVersion: v1\n", "entries: 3\n"])
def test_an_index_that_is_not_a_helm_index_is_bad_input(repo, text):
    repo.publish(text)
    with pytest.raises(BadInput, match=r"/index\.yaml"):
        ChartRepository(repo.url).versions(CHART)


def test_a_repository_without_the_chart_is_not_found(repo):
    repo.publish(index("0.1.0", chart="something-else"))
    with pytest.raises(NotFound, match=f"{repo.url} has no chart named '{CHART}'"):
        ChartRepository(repo.url).versions(CHART)


def test_a_dead_port_is_unavailable_and_names_the_url():
    url = dead_url()
    with pytest.raises(Unavailable, match=f"{url} could not be reached.*APP_CHART_REPO_URL"):
        ChartRepository(url, timeout=3).versions(CHART)


def test_a_missing_index_is_unavailable_and_names_the_url(repo):
    with pytest.raises(Unavailable, match=f"HTTP 404 for {repo.url}/index.yaml"):
        ChartRepository(repo.url).versions(CHART)


def test_app_versions_reads_the_configured_repository(app_settings, repo):
    repo.publish(index("0.1.0", "0.2.0", "0.3.0-rc.1"))
    assert app_versions() == ["0.2.0", "0.1.0"]


def test_app_versions_include_prereleases_when_configured(app_settings, repo):
    app_settings.APP_VERSIONS_INCLUDE_PRERELEASES = True
    repo.publish(index("0.1.0", "0.2.0", "0.3.0-rc.1"))
    assert app_versions() == ["0.3.0-rc.1", "0.2.0", "0.1.0"]


def test_app_versions_are_cached_until_refreshed(app_settings, repo):
    repo.publish(index("0.1.0"))
    assert app_versions() == ["0.1.0"]
    repo.publish(index("0.1.0", "0.2.0"))
    assert app_versions() == ["0.1.0"]
    assert repo.requests == 1

    assert app_versions(refresh=True) == ["0.2.0", "0.1.0"]
    assert repo.requests == 2
    assert app_versions() == ["0.2.0", "0.1.0"]  # the refresh replaced the cached list
    assert repo.requests == 2


def test_an_empty_list_is_cached_too(app_settings, repo):
    repo.publish(index("0.1.0-rc.1"))
    assert app_versions() == []
    assert app_versions() == []
    assert repo.requests == 1


def test_app_versions_do_not_cache_errors(app_settings, repo):
    with pytest.raises(Unavailable):
        app_versions()
    repo.publish("entries: [")
    with pytest.raises(BadInput):
        app_versions()
    repo.publish(index("0.1.0"))
    assert app_versions() == ["0.1.0"]
    assert repo.requests == 3


def test_app_versions_are_cached_per_repository(app_settings, repo, tmp_path_factory):
    repo.publish(index("0.1.0"))
    assert app_versions() == ["0.1.0"]
    other = Repo(tmp_path_factory.mktemp("other"))
    try:
        other.publish(index("7.0.0"))
        app_settings.APP_CHART_REPO_URL = other.url
        charts.get_chart_repository.cache_clear()
        assert app_versions() == ["7.0.0"]
    finally:
        other.close()
