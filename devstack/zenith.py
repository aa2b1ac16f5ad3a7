"""Plays the Zenith operator for the demo: marks platforms' Reservations Ready at local addresses.

No zenith-operator runs in the local stack, so the `Reservation`s that the application chart creates
would never get a status, and the console would show the platform's services as waiting for ever.
`python -m devstack zenith [PLATFORM] [--watch]` writes the status the operator writes once the
Zenith registrar has reserved a subdomain: `phase: Ready` with `subdomain` and `fqdn`, here
`<service>-<platform>.<config.ZENITH_BASE_DOMAIN>`. Like the operator, it leaves a Ready one alone.
The Reservation's fields: https://github.com/azimuth-cloud/zenith (operator/zenith/operator/models).
"""

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

GROUP, VERSION, PLURAL = "zenith.stackhpc.com", "v1alpha1", "reservations"
# The application chart labels each object that exposes a service with the service it exposes.
SERVICE_LABEL = "binderadmin.io/service"
REQUEST_TIMEOUT_SECONDS = 10
WATCH_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class Exposed:
    """One Reservation of a platform (its namespace) and the address it has."""

    platform: str
    name: str
    fqdn: str
    marked: bool  # True if this call marked it Ready, False if it was Ready already

    def __str__(self) -> str:
        done = "marked Ready" if self.marked else "already Ready"
        return f"{self.platform}/{self.name} {done}: https://{self.fqdn}"


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
        if status.get("phase") == "Ready" and status.get("fqdn"):
            exposed.append(Exposed(meta["namespace"], meta["name"], status["fqdn"], marked=False))
            continue
        # The namespace is the platform's name: the console installs each platform into its own.
        body = ready_status(meta["labels"][SERVICE_LABEL], meta["namespace"], base_domain)
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], body, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
        exposed.append(Exposed(meta["namespace"], meta["name"], body["status"]["fqdn"], marked=True))
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


def watch(
    api: client.CustomObjectsApi,
    platform: str | None,
    report: Callable[[str], None],
    interval: float = WATCH_INTERVAL_SECONDS,
) -> None:
    """Mark new Reservations Ready as they appear, reporting each one, until interrupted (Ctrl-C)."""
    while True:
        try:
            for item in expose_locally(api, platform):
                if item.marked:
                    report(str(item))
        except DevstackError as exc:
            # Keep watching: the API server may be restarting under us.
            report(f"{exc} (trying again)")
            time.sleep(2)
        time.sleep(interval)
