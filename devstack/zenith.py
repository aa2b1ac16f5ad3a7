"""Plays the Zenith operator for the demo: marks platforms' Reservations Ready at local addresses.

No zenith-operator runs in the local stack, so the `Reservation`s that the application chart creates
would never get a status, and the console would show the platform's services as waiting for ever.
`python -m devstack zenith [PLATFORM] [--watch]` writes the status the operator writes once the
Zenith registrar has reserved a subdomain: `phase: Ready` with `subdomain` and `fqdn`, here
`<service>-<platform>.<config.ZENITH_BASE_DOMAIN>`. Like the operator, it leaves a Ready one alone.
With --watch it also plays Zenith's proxy (devstack/zenith_proxy.py): those names answer in plain http
at config.ZENITH_PROXY_PORT on loopback, relayed to the Service each platform's Zenith `Client` names.
The Reservation's and Client's fields: https://github.com/azimuth-cloud/zenith (operator/zenith/operator/models).
"""

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import urllib3
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from devstack import config
from devstack.procs import DevstackError
from devstack.zenith_proxy import ZenithProxy

GROUP, VERSION, PLURAL = "zenith.stackhpc.com", "v1alpha1", "reservations"
CLIENTS = "clients"
# The application chart labels each object that exposes a service with the service it exposes.
SERVICE_LABEL = "binderadmin.io/service"
REQUEST_TIMEOUT_SECONDS = 10
WATCH_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class Exposed:
    """One Reservation of a platform (its namespace) and the address it has."""

    platform: str
    name: str
    service: str
    fqdn: str
    marked: bool  # True if this call marked it Ready, False if it was Ready already

    @property
    def ours(self) -> bool:
        """True if the address is the one this watch writes (not one another player wrote)."""
        return self.fqdn == ready_status(self.service, self.platform)["status"]["fqdn"]

    def __str__(self) -> str:
        done = "marked Ready" if self.marked else "already Ready"
        return f"{self.platform}/{self.name} {done}: {self.fqdn}"


def ready_status(service: str, platform: str, base_domain: str = config.ZENITH_BASE_DOMAIN) -> dict:
    """The status patch the Zenith operator writes once the service's subdomain is reserved."""
    subdomain = f"{service}-{platform}"
    return {"status": {"phase": "Ready", "subdomain": subdomain, "fqdn": f"{subdomain}.{base_domain}"}}


def expose(
    api: client.CustomObjectsApi, platform: str | None = None, base_domain: str = config.ZENITH_BASE_DOMAIN
) -> list[Exposed]:
    """Mark Ready each Reservation of the platform (of every platform if None) that is not Ready yet.

    Returns every labelled Reservation found, marked now or before; raises ApiException.
    """
    options = {"label_selector": SERVICE_LABEL, "_request_timeout": REQUEST_TIMEOUT_SECONDS}
    if platform:
        found = api.list_namespaced_custom_object(GROUP, VERSION, platform, PLURAL, **options)
    else:
        found = api.list_cluster_custom_object(GROUP, VERSION, PLURAL, **options)
    exposed = []
    for reservation in found["items"]:
        meta = reservation["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        status = reservation.get("status") or {}
        service = meta["labels"][SERVICE_LABEL]
        if status.get("phase") == "Ready" and status.get("fqdn"):
            exposed.append(Exposed(meta["namespace"], meta["name"], service, str(status["fqdn"]), marked=False))
            continue
        # The namespace is the platform's name: the console installs each platform into its own.
        body = ready_status(service, meta["namespace"], base_domain)
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], body, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
        exposed.append(Exposed(meta["namespace"], meta["name"], service, body["status"]["fqdn"], marked=True))
    return exposed


def local_api(kubeconfig: Path | None = None) -> client.CustomObjectsApi:
    """A client of the local stack's Kubernetes API; raises DevstackError if the stack never came up."""
    kubeconfig = kubeconfig or config.KUBECONFIG
    if not kubeconfig.exists():
        raise DevstackError(f"no kubeconfig at {kubeconfig}: bring the local stack up first (make run).")
    return client.CustomObjectsApi(kube_config.new_client_from_config(str(kubeconfig)))


def expose_locally(api: client.CustomObjectsApi, platform: str | None) -> list[Exposed]:
    """expose(), with the local stack's failures turned into one clear line (DevstackError)."""
    try:
        return expose(api, platform)
    except ApiException as exc:
        refused = f"{exc.status} {exc.reason}"
        raise DevstackError(f"the Kubernetes API refused to list or mark Reservations: {refused}") from None
    except urllib3.exceptions.HTTPError as exc:
        raise DevstackError(f"the local Kubernetes API is not answering ({exc}): is the stack up? (make run)") from None


def proxy_routes(exposed: list[Exposed]) -> dict[str, tuple[str, str]]:
    """The names the proxy answers for: only the addresses this watch writes -> (namespace, Reservation)."""
    return {item.fqdn: (item.platform, item.name) for item in exposed if item.ours}


def proxy_url(fqdn: str, port: int) -> str:
    """Where the proxy serves a name; the console links there with ZENITH_LINK_SCHEME=http, ZENITH_LINK_PORT=port."""
    return f"http://{fqdn}:{port}"


def upstream_resolver(api_client: client.ApiClient):
    """resolve(namespace, reservation) for ZenithProxy: the cluster address of the Service its Client names.

    What the cluster holds is untrusted: the Client is read from the platform's own namespace, and only
    a cluster IP and a port of the Service it names there are used. Raises LookupError saying why not.
    """
    custom, core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)

    def resolve(namespace: str, name: str) -> tuple[str, int]:
        try:
            zenith_client = custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, CLIENTS, name, _request_timeout=REQUEST_TIMEOUT_SECONDS
            )
            upstream = (zenith_client.get("spec") or {}).get("upstream") or {}
            service = core.read_namespaced_service(
                str(upstream.get("serviceName", "")), namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS
            )
        except ApiException as exc:
            raise LookupError(f"its Zenith Client or Service cannot be read ({exc.status} {exc.reason})") from None
        except urllib3.exceptions.HTTPError as exc:
            raise LookupError(f"the local Kubernetes API is not answering ({exc})") from None
        return service_address(service, upstream.get("port"))

    return resolve


def service_address(service: client.V1Service, wanted_port: object) -> tuple[str, int]:
    """The Service's cluster IP and the port the Client wants (by number or name; else its first)."""
    try:
        address = str(ipaddress.ip_address(service.spec.cluster_ip or ""))
    except ValueError:
        raise LookupError(f"Service {service.metadata.name} has no cluster IP") from None
    ports = service.spec.ports or []
    chosen = [p.port for p in ports if wanted_port in (None, p.port, p.name)][:1]
    if not chosen or not isinstance(chosen[0], int) or not 0 < chosen[0] < 65536:
        raise LookupError(f"Service {service.metadata.name} has no port {wanted_port or ''}".rstrip())
    return address, chosen[0]


def start_proxy(port: int = config.PORTS.zenith_proxy, kubeconfig: Path | None = None) -> ZenithProxy:
    """Zenith's proxy on loopback, serving in a thread until the process ends; raises DevstackError."""
    proxy = ZenithProxy(upstream_resolver(kube_config.new_client_from_config(str(kubeconfig or config.KUBECONFIG))))
    proxy.port = port
    try:
        proxy.start()
    except OSError as exc:
        raise DevstackError(f"Zenith's proxy cannot listen on {config.HOST}:{port}: {exc}") from None
    return proxy


def watch(
    api: client.CustomObjectsApi,
    platform: str | None,
    report: Callable[[str], None],
    interval: float = WATCH_INTERVAL_SECONDS,
    proxy: ZenithProxy | None = None,
) -> None:
    """Mark new Reservations Ready as they appear, reporting each one, until interrupted (Ctrl-C).

    With a proxy, it answers for the names this watch writes (and only while their Reservation exists).
    """
    while True:
        try:
            exposed = expose_locally(api, platform)
            if proxy is not None:
                proxy.routes = proxy_routes(exposed)
            for item in exposed:
                if item.marked:
                    report(f"{item}, served at {proxy_url(item.fqdn, proxy.port)}" if proxy else str(item))
        except DevstackError as exc:
            # Keep watching: the API server may be restarting under us.
            report(f"{exc} (trying again)")
            time.sleep(2)
        time.sleep(interval)
