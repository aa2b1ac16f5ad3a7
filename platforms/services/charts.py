"""Reads which versions of the application chart a Helm chart repository publishes (the App versions)."""

import logging
from functools import cache

import requests
import semver
import yaml
from django.conf import settings
from django.core.cache import cache as django_cache

from platforms.services.errors import BadInput, NotFound, Unavailable

logger = logging.getLogger(__name__)

# Reading index.yaml is one small GET; a repository slower than this is treated as down.
REQUEST_TIMEOUT_SECONDS = 10.0

# The C loader is much faster on the multi-megabyte indexes of big public repositories.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ChartRepository:
    """One Helm chart repository (http or https), read through its index.yaml.

    The index format: https://helm.sh/docs/topics/chart_repository/#the-index-file
    """

    def __init__(self, url: str, timeout: float = REQUEST_TIMEOUT_SECONDS):
        self.url = url.rstrip("/")
        self.timeout = timeout

    @property
    def index_url(self) -> str:
        return f"{self.url}/index.yaml"

    def versions(self, chart_name: str, include_prereleases: bool = False) -> list[str]:
        """The chart's versions, newest first by semantic version; pre-releases only when asked.

        Versions that are not valid semantic versions are skipped. Raises Unavailable when the
        repository cannot be reached or answers an HTTP error, BadInput when its index is not a
        Helm index, and NotFound when the index is fine but does not list the chart (most likely
        a wrong APP_CHART_NAME or APP_CHART_REPO_URL, which a person fixes in the settings).
        """
        entries = self._entries()
        if chart_name not in entries:
            raise NotFound(f"The chart repository at {self.url} has no chart named {chart_name!r}.")
        releases = entries[chart_name]
        if not isinstance(releases, list):
            raise BadInput(f"The chart repository's index at {self.index_url} lists {chart_name!r} wrongly.")
        parsed: dict[str, semver.Version] = {}
        for release in releases:
            text = release.get("version") if isinstance(release, dict) else None
            version = _semver(text)
            if version is None:
                logger.info("skipping chart %s version %r from %s: not semver", chart_name, text, self.url)
                continue
            if version.prerelease and not include_prereleases:
                continue
            parsed[text] = version
        return sorted(parsed, key=parsed.__getitem__, reverse=True)

    def _entries(self) -> dict:
        try:
            response = requests.get(self.index_url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unavailable(
                f"The chart repository at {self.url} could not be reached ({type(exc).__name__}); "
                "check that it is up and that APP_CHART_REPO_URL is right."
            ) from None
        if response.status_code != 200:
            raise Unavailable(
                f"The chart repository answered HTTP {response.status_code} for {self.index_url}; "
                "check that it is up and that APP_CHART_REPO_URL is right."
            )
        try:
            document = yaml.load(response.content, Loader=_YamlLoader)
        except yaml.YAMLError:
            raise BadInput(f"The chart repository's index at {self.index_url} is not valid YAML.") from None
        entries = document.get("entries") if isinstance(document, dict) else None
        if not isinstance(entries, dict):
            raise BadInput(f"The chart repository's index at {self.index_url} has no 'entries': is it a Helm repo?")
        return entries


def _semver(text: object) -> semver.Version | None:
    if not isinstance(text, str):
        return None
    try:
        return semver.Version.parse(text)
    except ValueError:
        return None


@cache
def get_chart_repository() -> ChartRepository:
    """The configured application chart repository (tests may clear this cache to swap settings)."""
    return ChartRepository(settings.APP_CHART_REPO_URL)


def app_versions(refresh: bool = False) -> list[str]:
    """The App versions to offer, newest first, cached for APP_VERSIONS_CACHE_SECONDS.

    refresh=True reads the repository now and replaces the cached list. Errors are raised as
    ChartRepository.versions raises them and are never cached, so the next call tries again.
    """
    repository = get_chart_repository()
    chart = settings.APP_CHART_NAME
    prereleases = settings.APP_VERSIONS_INCLUDE_PRERELEASES
    key = f"app-versions:{repository.url}:{chart}:{'with' if prereleases else 'no'}-prereleases"
    if not refresh:
        cached = django_cache.get(key)
        if cached is not None:
            return cached
    versions = repository.versions(chart, include_prereleases=prereleases)
    django_cache.set(key, versions, settings.APP_VERSIONS_CACHE_SECONDS)
    return versions
