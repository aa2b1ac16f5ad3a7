"""Reads a Kubernetes cluster through the kubernetes client, from a stored kubeconfig."""

import logging
from functools import cache

import urllib3
import yaml
from django.conf import settings
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from platforms.services import kubeconfig
from platforms.services.errors import BadInput, ServiceError, Unavailable
from platforms.services.types import ClusterAccess, ServerVersion, ServiceLinkInfo

logger = logging.getLogger(__name__)


class KubeService:
    """Verb methods on one cluster at a time; every call names the cluster it talks to."""

    def __init__(self, request_timeout: float = 10):
        self.request_timeout = request_timeout

    def api_client(self, access: ClusterAccess) -> client.ApiClient:
        """A kubernetes ApiClient for the cluster, from its kubeconfig checked and cut down to one
        context (platforms.services.kubeconfig); raises BadInput for a refused or unusable kubeconfig."""
        checked = kubeconfig.check(access.kubeconfig, access.context)
        try:
            return config.new_client_from_config_dict(yaml.safe_load(checked.text), context=checked.context)
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

    def service_links(self, access: ClusterAccess, namespace: str, exposure: str) -> list[ServiceLinkInfo]:
        """The platform's services as Zenith Reservations (exposure "zenith") or Ingresses report them.

        A Reservation is ready when its status.phase is Ready and it has a status.fqdn (see
        ../shared/upstream/zenith/CRDS.md); an Ingress, once it has a host. What they report is
        untrusted: platforms.service_addresses checks it before it becomes a link.
        """
        with self.api_client(access) as api:
            try:
                if exposure == "ingress":
                    items = networking_items(api, namespace, self.request_timeout)
                    return [link_from_ingress(item) for item in items]
                body = client.CustomObjectsApi(api).list_namespaced_custom_object(
                    ZENITH_GROUP,
                    ZENITH_VERSION,
                    namespace,
                    "reservations",
                    label_selector=SERVICE_LABEL,
                    _request_timeout=self.request_timeout,
                )
            except ApiException as exc:
                if exc.status == 404 and exposure != "ingress":
                    raise Unavailable(
                        "The cluster has no Zenith Reservation resource: is the Zenith operator installed? "
                        "Otherwise register the cluster with Ingress exposure."
                    ) from None
                raise _api_error(exc) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise Unavailable(f"The cluster's API server could not be reached: {_short(exc)}") from None
        return [link_from_reservation(item) for item in body.get("items", [])]

    def node_ports(self, access: ClusterAccess) -> set[int]:
        """The NodePorts the cluster's Services use, in every namespace (one listing).

        Raises BadInput when the kubeconfig may not list Services cluster-wide, Unavailable.
        """
        with self.api_client(access) as api:
            try:
                services = client.CoreV1Api(api).list_service_for_all_namespaces(_request_timeout=self.request_timeout)
            except ApiException as exc:
                raise _api_error(exc) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise Unavailable(f"The cluster's API server could not be reached: {_short(exc)}") from None
        return {port.node_port for item in services.items for port in item.spec.ports or [] if port.node_port}

    def delete_namespace(self, access: ClusterAccess, name: str) -> str:
        """Ask for the namespace to be deleted; return its phase afterwards ("Gone", "Terminating"...)."""
        with self.api_client(access) as api:
            core = client.CoreV1Api(api)
            try:
                core.delete_namespace(name, _request_timeout=self.request_timeout)
            except ApiException as exc:
                if exc.status != 404:
                    raise _api_error(exc) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise Unavailable(f"The cluster's API server could not be reached: {_short(exc)}") from None
        return self.namespace_phase(access, name)

    def namespace_phase(self, access: ClusterAccess, name: str) -> str:
        """The namespace's phase ("Active", "Terminating"), or "Gone" when it does not exist."""
        with self.api_client(access) as api:
            try:
                namespace = client.CoreV1Api(api).read_namespace(name, _request_timeout=self.request_timeout)
            except ApiException as exc:
                if exc.status == 404:
                    return "Gone"
                raise _api_error(exc) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise Unavailable(f"The cluster's API server could not be reached: {_short(exc)}") from None
        return namespace.status.phase or "Active"


ZENITH_GROUP = "zenith.stackhpc.com"
ZENITH_VERSION = "v1alpha1"
SERVICE_LABEL = "binderadmin.io/service"


def link_from_reservation(item: dict) -> ServiceLinkInfo:
    """What a Reservation reports; ready once its phase is Ready and it has an fqdn (unchecked)."""
    metadata = item.get("metadata") or {}
    status = item.get("status") or {}
    fqdn = status.get("fqdn")
    host = fqdn if isinstance(fqdn, str) else ("" if fqdn is None else repr(fqdn))
    return ServiceLinkInfo(
        name=_service_name(metadata.get("labels"), metadata.get("name")),
        host=host,
        ready=status.get("phase") == "Ready" and bool(host),
    )


def networking_items(api: client.ApiClient, namespace: str, timeout: float) -> list:
    return (
        client.NetworkingV1Api(api)
        .list_namespaced_ingress(namespace, label_selector=SERVICE_LABEL, _request_timeout=timeout)
        .items
    )


def link_from_ingress(ingress) -> ServiceLinkInfo:
    """What an Ingress reports: its first host (unchecked); ready once it has one."""
    hosts = [rule.host for rule in ingress.spec.rules or [] if rule.host]
    return ServiceLinkInfo(
        name=_service_name(ingress.metadata.labels, ingress.metadata.name),
        host=hosts[0] if hosts else "",
        ready=bool(hosts),
    )


def _service_name(labels: object, name: object) -> str:
    value = (labels if isinstance(labels, dict) else {}).get(SERVICE_LABEL) or name
    return value if isinstance(value, str) else ""


def _api_error(exc: ApiException) -> ServiceError:
    if exc.status in (401, 403):
        return BadInput(f"The cluster refused the request (HTTP {exc.status}): check the kubeconfig's permissions.")
    return Unavailable(f"The cluster answered HTTP {exc.status}: {exc.reason}")


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"


@cache
def get_kube() -> KubeService:
    """The configured Kubernetes service."""
    return KubeService(request_timeout=settings.CLUSTER_CHECK_TIMEOUT_SECONDS)
