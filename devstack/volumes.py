"""Plays the volume controllers the local stack lacks: binds pending PersistentVolumeClaims, releases deleted ones.

The local stack has no storage provisioner and runs no volume controllers, so nothing would ever
bind a claim, and `helm --atomic` (which implies --wait, and waits for every claim to be Bound) would
time out and roll back every release that has a claim, like the application chart's registry.
`python -m devstack.volumes` runs as one of the stack's processes and gives each claim the status a
real binder would: Bound, with the size and access modes it asked for; and it lets deleted claims go,
as pvc-protection would.
"""

import sys
import time

import yaml
from kubernetes import client, watch
from kubernetes import config as kube_config

from devstack import config

NAME = "volume-binder"
WATCH_SECONDS = 300
PROTECTION = "kubernetes.io/pvc-protection"


def bound_status(claim: client.V1PersistentVolumeClaim) -> dict:
    """The status a real binder would give the claim."""
    requests = (claim.spec.resources.requests if claim.spec.resources else None) or {}
    status: dict = {"phase": "Bound", "accessModes": claim.spec.access_modes or ["ReadWriteOnce"]}
    if "storage" in requests:
        status["capacity"] = {"storage": requests["storage"]}
    return status


def settle(api: client.CoreV1Api, claim: client.V1PersistentVolumeClaim) -> str | None:
    """Bind the claim if it is pending, release it if it is deleted; return what was done, if anything."""
    meta = claim.metadata
    if meta.deletion_timestamp:
        # The pvc-protection controller drops this finalizer once no pod uses the claim; no pod
        # ever runs here, so a deleted claim would otherwise stay Terminating for ever.
        if PROTECTION in (meta.finalizers or []):
            finalizers = [f for f in meta.finalizers if f != PROTECTION]
            # A JSON patch: a strategic merge patch would merge the list instead of replacing it.
            patch = [{"op": "replace", "path": "/metadata/finalizers", "value": finalizers}]
            api.patch_namespaced_persistent_volume_claim(meta.name, meta.namespace, patch)
            return f"released {meta.namespace}/{meta.name}"
    elif not (claim.status and claim.status.phase == "Bound"):
        api.patch_namespaced_persistent_volume_claim_status(meta.name, meta.namespace, {"status": bound_status(claim)})
        return f"bound {meta.namespace}/{meta.name}"
    return None


def reconcile(api: client.CoreV1Api, claims: list | None = None) -> list[str]:
    """Settle every claim (by default, every claim there is); return what was done, one line each."""
    if claims is None:
        claims = api.list_persistent_volume_claim_for_all_namespaces().items
    return [line for claim in claims if (line := settle(api, claim))]


def serve(api: client.CoreV1Api) -> None:
    """Settle every claim, then each new or changed one as the API server reports it.

    A watch answers within milliseconds, where polling would not: `helm --wait` first looks a tenth
    of a second after it creates a claim, and when the claim is not Bound yet it looks again only 2 s later.
    """
    listing = api.list_persistent_volume_claim_for_all_namespaces()
    for line in reconcile(api, listing.items):
        print(line, flush=True)
    events = watch.Watch().stream(
        api.list_persistent_volume_claim_for_all_namespaces,
        resource_version=listing.metadata.resource_version,
        timeout_seconds=WATCH_SECONDS,
    )
    for event in events:
        if event["type"] in ("ADDED", "MODIFIED") and (line := settle(api, event["object"])):
            print(line, flush=True)


def main() -> int:
    api = None
    while True:
        try:
            if api is None:
                document = yaml.safe_load(config.KUBECONFIG.read_text())
                api = client.CoreV1Api(kube_config.new_client_from_config_dict(document))
            serve(api)  # returns when the watch ends; then list again, as informers do
        except Exception as exc:  # keep serving: the API server may restart under us
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            api = None
            time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
