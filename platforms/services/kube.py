"""Reads a Kubernetes cluster through the kubernetes client, from a stored kubeconfig."""

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import urllib3
import yaml
from django.conf import settings
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from platforms.services import kubeconfig, nodes
from platforms.services.errors import BadInput, NoAnswer, ServiceError, Unavailable
from platforms.services.interfaces import Kube
from platforms.services.types import ClusterAccess, ClusterCapacity, ReleaseInfo, ServerVersion, ServiceLinkInfo

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
            document = yaml.load(checked.text, Loader=kubeconfig.LOADER)
            return config.new_client_from_config_dict(document, context=checked.context)
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
                raise NoAnswer(f"The cluster's API server could not be reached: {_short(exc)}") from None
        return ServerVersion(
            git_version=info.git_version, major=info.major, minor=info.minor, platform=info.platform or ""
        )

    def service_links(self, access: ClusterAccess, namespace: str, exposure: str) -> list[ServiceLinkInfo]:
        """The platform's services as Zenith Reservations (exposure "zenith") or Ingresses report them.

        A Reservation is ready when its status.phase is Ready and it has a status.fqdn (see
        ../shared/upstream/zenith/CRDS.md); an Ingress, once it has a host. What they report is
        untrusted: platforms.service_addresses checks it before it becomes a link.
        """
        with self.api_client(access) as api, _asking(zenith=exposure != "ingress"):
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
        return [link_from_reservation(item) for item in body.get("items", [])]

    def capacity(self, access: ClusterAccess) -> ClusterCapacity:
        """The cluster's nodes, storage classes and what its pods request: three listings, read as plain JSON.

        Only pods that hold resources count (not Succeeded or Failed ones). Raises BadInput when the
        kubeconfig may not list them, NoAnswer, Unavailable.
        """
        # Read as plain JSON: the client's models would cost far more for every pod of a large cluster.
        raw = {"_preload_content": False, "_request_timeout": self.request_timeout}
        with self.api_client(access) as api, _asking():
            core = client.CoreV1Api(api)
            listings = [
                _json_items(core.list_node(**raw), "nodes"),
                _json_items(client.StorageV1Api(api).list_storage_class(**raw), "storage classes"),
                _json_items(core.list_pod_for_all_namespaces(field_selector=HOLDING_RESOURCES, **raw), "pods"),
            ]
        return nodes.capacity_from_listings(*listings)

    def node_ports(self, access: ClusterAccess) -> set[int]:
        """The NodePorts the cluster's Services use, in every namespace (one listing).

        Only Services of a type that may hold one are read: ClusterIP Services, most of a cluster's,
        hold none, and reading them all made each install wait on a listing that grows with the cluster.
        Raises BadInput when the kubeconfig may not list Services cluster-wide, Unavailable.
        """
        with self.api_client(access) as api:
            try:
                services = client.CoreV1Api(api).list_service_for_all_namespaces(
                    field_selector="spec.type!=ClusterIP", _request_timeout=self.request_timeout
                )
            except ApiException as exc:
                raise _api_error(exc) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise NoAnswer(f"The cluster's API server could not be reached: {_short(exc)}") from None
        return {port.node_port for item in services.items for port in item.spec.ports or [] if port.node_port}

    def helm_releases(self, access: ClusterAccess) -> dict[str, ReleaseInfo]:
        """Every Helm release on the cluster whose namespace is named like it: name -> latest revision.

        One request, whatever the number of releases: Helm keeps each revision as a Secret labelled
        owner=helm, name, status and version, and the labels are all a pass needs, so only the
        metadata is asked for (`helm list` would fetch and decode every revision's whole record).
        Superseded revisions are left out by the selector. What the labels say is checked: a record
        with a malformed label is skipped. Raises BadInput, NoAnswer, Unavailable.
        """
        with self.api_client(access) as api, _asking():
            response = client.CoreV1Api(api).list_secret_for_all_namespaces(
                label_selector=HELM_RECORDS,
                _headers={"Accept": METADATA_ONLY},
                _preload_content=False,
                _request_timeout=self.request_timeout,
            )
            if response.status != 200:
                raise ApiException(status=response.status, reason=response.reason)
            try:
                body = json.loads(response.data)
            except ValueError:
                raise Unavailable("The cluster answered the listing of Helm's records with no JSON.") from None
        releases: dict[str, ReleaseInfo] = {}
        for item in _items(body):
            release = release_from_record(item)
            if release and (release.name not in releases or releases[release.name].revision < release.revision):
                releases[release.name] = release
        return releases

    def service_links_by_namespace(self, access: ClusterAccess, exposure: str) -> dict[str, list[ServiceLinkInfo]]:
        """The services of every platform on the cluster, by namespace, in one request (see service_links).

        Raises Unavailable (also when the cluster has no Zenith Reservation resource), NoAnswer, BadInput.
        """
        found: dict[str, list[ServiceLinkInfo]] = {}
        with self.api_client(access) as api, _asking(zenith=exposure != "ingress"):
            if exposure == "ingress":
                ingresses = client.NetworkingV1Api(api).list_ingress_for_all_namespaces(
                    label_selector=SERVICE_LABEL, _request_timeout=self.request_timeout
                )
                for ingress in ingresses.items:
                    if isinstance(ingress.metadata.namespace, str):
                        found.setdefault(ingress.metadata.namespace, []).append(link_from_ingress(ingress))
                return found
            body = client.CustomObjectsApi(api).list_cluster_custom_object(
                ZENITH_GROUP,
                ZENITH_VERSION,
                "reservations",
                label_selector=SERVICE_LABEL,
                _request_timeout=self.request_timeout,
            )
        for item in _items(body):
            namespace = item["metadata"].get("namespace")
            if isinstance(namespace, str):
                found.setdefault(namespace, []).append(link_from_reservation(item))
        return found

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
                raise NoAnswer(f"The cluster's API server could not be reached: {_short(exc)}") from None
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
                raise NoAnswer(f"The cluster's API server could not be reached: {_short(exc)}") from None
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


# Pods that hold the resources they request: not those that have finished.
HOLDING_RESOURCES = "status.phase!=Succeeded,status.phase!=Failed"
# Helm's release records (storage driver "secret", Helm's default): the current revisions only.
HELM_RECORDS = "owner=helm,status!=superseded"
# Ask the API server for the objects' metadata only (PartialObjectMetadataList), not their data.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
HELM_STATUSES = frozenset(
    ("unknown", "deployed", "uninstalled", "superseded", "failed", "uninstalling")
    + ("pending-install", "pending-upgrade", "pending-rollback")
)
RELEASE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?\Z")


def release_from_record(item: dict) -> ReleaseInfo | None:
    """The release a Helm record's labels describe, or None when they are not what Helm writes.

    Only a release in the namespace named like it is one of the console's (one namespace per platform).
    """
    metadata = item["metadata"]
    labels = metadata.get("labels")
    if not isinstance(labels, dict):
        return None
    name, status, version = labels.get("name"), labels.get("status"), labels.get("version")
    if not (isinstance(name, str) and RELEASE_NAME.match(name) and metadata.get("namespace") == name):
        return None
    if status not in HELM_STATUSES or not (isinstance(version, str) and version.isdigit() and len(version) < 10):
        logger.warning("helm record of %s skipped: status %r, version %r", name, status, version)
        return None
    return ReleaseInfo(name=name, namespace=name, revision=int(version), status=status)


def _items(body: object) -> list[dict]:
    """The items of a listing that are objects with metadata; anything else the cluster sent is dropped."""
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise Unavailable("The cluster answered a listing with something that is not a list of objects.")
    return [item for item in items if isinstance(item, dict) and isinstance(item.get("metadata"), dict)]


def _json_items(response: object, what: str) -> list[dict]:
    """The items of a listing read with _preload_content=False; raises as the client would have."""
    if response.status != 200:
        raise ApiException(status=response.status, reason=response.reason)
    try:
        return _items(json.loads(response.data))
    except ValueError:
        raise Unavailable(f"The cluster answered the listing of {what} with no JSON.") from None


@contextmanager
def _asking(zenith: bool = False) -> Iterator[None]:
    """Translate the kubernetes client's errors into ours (zenith: a 404 means no Reservation resource)."""
    try:
        yield
    except ApiException as exc:
        if exc.status == 404 and zenith:
            raise Unavailable(
                "The cluster has no Zenith Reservation resource: is the Zenith operator installed? "
                "Otherwise register the cluster with Ingress exposure."
            ) from None
        raise _api_error(exc) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise NoAnswer(f"The cluster's API server could not be reached: {_short(exc)}") from None


def _api_error(exc: ApiException) -> ServiceError:
    if exc.status in (401, 403):
        return BadInput(f"The cluster refused the request (HTTP {exc.status}): check the kubeconfig's permissions.")
    return Unavailable(f"The cluster answered HTTP {exc.status}: {exc.reason}")


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"


def load_api_modules() -> None:
    """Import the client's API modules now: kubernetes.client defers each to its first use, about a
    second of a worker's first operation otherwise."""
    from kubernetes.client import CoreV1Api, CustomObjectsApi, NetworkingV1Api  # noqa: F401


@cache
def get_kube() -> Kube:
    """The configured Kubernetes service."""
    return KubeService(request_timeout=settings.CLUSTER_CHECK_TIMEOUT_SECONDS)
