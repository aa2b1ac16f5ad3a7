"""Reads a Kubernetes cluster through the kubernetes client, from a stored kubeconfig."""

import logging
from functools import cache

import urllib3
import yaml
from django.conf import settings
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from platforms.services.errors import BadInput, Unavailable
from platforms.services.types import ClusterAccess, KubeconfigContexts, ServerVersion

logger = logging.getLogger(__name__)


class KubeService:
    """Verb methods on one cluster at a time; every call names the cluster it talks to."""

    def __init__(self, request_timeout: float = 10):
        self.request_timeout = request_timeout

    def api_client(self, access: ClusterAccess) -> client.ApiClient:
        """A kubernetes ApiClient for the cluster; raises BadInput for an unusable kubeconfig."""
        document = _parse(access.kubeconfig)
        try:
            return config.new_client_from_config_dict(document, context=access.context or None)
        except (ConfigException, KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"The kubeconfig cannot be used: {exc}") from None

    def server_version(self, access: ClusterAccess) -> ServerVersion:
        """What the API server reports at /version.

        Raises BadInput for a bad kubeconfig or rejected credentials, Unavailable when the server
        cannot be reached.
        """
        with self.api_client(access) as api:
            try:
                info = client.VersionApi(api).get_code(_request_timeout=self.request_timeout)
            except ApiException as exc:
                if exc.status in (401, 403):
                    raise BadInput(f"The cluster rejected the credentials (HTTP {exc.status}).") from None
                raise Unavailable(f"The cluster answered HTTP {exc.status}: {exc.reason}") from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise Unavailable(f"The cluster's API server could not be reached: {_short(exc)}") from None
        return ServerVersion(
            git_version=info.git_version, major=info.major, minor=info.minor, platform=info.platform or ""
        )


def kubeconfig_contexts(kubeconfig: str) -> KubeconfigContexts:
    """The context names in a kubeconfig and its current context; raises BadInput if it has none."""
    document = _parse(kubeconfig)
    names = [
        entry["name"]
        for entry in document.get("contexts") or []
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    ]
    if not names:
        raise BadInput("The kubeconfig has no contexts.")
    current = document.get("current-context")
    return KubeconfigContexts(names=names, current=current if current in names else "")


def _parse(kubeconfig: str) -> dict:
    try:
        document = yaml.safe_load(kubeconfig)
    except yaml.YAMLError as exc:
        raise BadInput(f"The kubeconfig is not valid YAML: {_short(exc)}") from None
    if not isinstance(document, dict):
        raise BadInput("The kubeconfig is not a YAML mapping.")
    return document


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"


@cache
def get_kube() -> KubeService:
    """The configured Kubernetes service."""
    return KubeService(request_timeout=settings.CLUSTER_CHECK_TIMEOUT_SECONDS)
