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
from kubernetes import client
from kubernetes import config as kube_config

from devstack import config

NAME = "volume-binder"
INTERVAL_SECONDS = 0.5
PROTECTION = "kubernetes.io/pvc-protection"


def bound_status(claim: client.V1PersistentVolumeClaim) -> dict:
    """The status a real binder would give the claim."""
    requests = (claim.spec.resources.requests if claim.spec.resources else None) or {}
    status: dict = {"phase": "Bound", "accessModes": claim.spec.access_modes or ["ReadWriteOnce"]}
    if "storage" in requests:
        status["capacity"] = {"storage": requests["storage"]}
    return status


def reconcile(api: client.CoreV1Api) -> list[str]:
    """Bind every pending claim and release every deleted one; return what was done, one line each."""
    done = []
    for claim in api.list_persistent_volume_claim_for_all_namespaces().items:
        meta = claim.metadata
        if meta.deletion_timestamp:
            # The pvc-protection controller drops this finalizer once no pod uses the claim; no pod
            # ever runs here, so a deleted claim would otherwise stay Terminating for ever.
            if PROTECTION in (meta.finalizers or []):
                finalizers = [f for f in meta.finalizers if f != PROTECTION]
                # A JSON patch: a strategic merge patch would merge the list instead of replacing it.
                patch = [{"op": "replace", "path": "/metadata/finalizers", "value": finalizers}]
                api.patch_namespaced_persistent_volume_claim(meta.name, meta.namespace, patch)
                done.append(f"released {meta.namespace}/{meta.name}")
        elif not (claim.status and claim.status.phase == "Bound"):
            api.patch_namespaced_persistent_volume_claim_status(
                meta.name, meta.namespace, {"status": bound_status(claim)}
            )
            done.append(f"bound {meta.namespace}/{meta.name}")
    return done


def main() -> int:
    api = None
    while True:
        try:
            if api is None:
                document = yaml.safe_load(config.KUBECONFIG.read_text())
                api = client.CoreV1Api(kube_config.new_client_from_config_dict(document))
            for line in reconcile(api):
                print(line, flush=True)
        except Exception as exc:  # keep serving: the API server may restart under us
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            api = None
            time.sleep(2)
        time.sleep(INTERVAL_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
