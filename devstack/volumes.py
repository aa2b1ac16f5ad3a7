"""Plays the volume controllers the local stack lacks: binds pending PersistentVolumeClaims, releases deleted ones.

The local stack has no storage provisioner, so nothing would ever bind a claim, and `helm --atomic`
(which implies --wait, and waits for every claim to be Bound) would time out and roll back every
release that has a claim, like the application chart's registry. `python -m devstack.volumes` runs as
one of the stack's processes, in one of two modes:

- without the node (no pod runs): it gives each claim the status a real binder would, Bound with the
  size and access modes it asked for, and lets deleted claims go, as pvc-protection would;
- with the node (`--volumes-dir DIR`): it is a hostPath provisioner, as a real cluster's storage
  provisioner would be: for each pending claim a folder `DIR/devstack-<claim uid>` and a
  PersistentVolume bound to that very claim (claimRef with its uid); once the claim is gone, the
  volume and its folder go too. kube-controller-manager's pvc-protection controller lets a deleted
  claim go once no pod uses it.
"""

import argparse
import contextlib
import re
import shutil
import sys
import time
from pathlib import Path

import yaml
from kubernetes import client, watch
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from devstack import config

NAME = "volume-binder"
WATCH_SECONDS = 300
PROTECTION = "kubernetes.io/pvc-protection"
# The volumes this binder made carry this label; it deletes no other.
VOLUME_LABEL = "devstack.binderadmin.local/volume"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
VOLUME_NAME = re.compile(r"^devstack-[0-9a-f-]{36}$")


def bound_status(claim: client.V1PersistentVolumeClaim) -> dict:
    """The status a real binder would give the claim."""
    requests = (claim.spec.resources.requests if claim.spec.resources else None) or {}
    status: dict = {"phase": "Bound", "accessModes": claim.spec.access_modes or ["ReadWriteOnce"]}
    if "storage" in requests:
        status["capacity"] = {"storage": requests["storage"]}
    return status


def volume_name(claim: client.V1PersistentVolumeClaim) -> str:
    """The volume made for the claim: named by its uid, so a new claim of the same name gets a new one."""
    return f"devstack-{claim.metadata.uid}"


def host_volume(claim: client.V1PersistentVolumeClaim, folder: Path) -> dict:
    """A hostPath PersistentVolume for the claim, bound to it (the uid makes it this claim and no later one).

    Retain: the binder deletes it itself once the claim is gone (the hostPath deleter only works under /tmp).
    """
    meta = claim.metadata
    requests = (claim.spec.resources.requests if claim.spec.resources else None) or {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name(claim), "labels": {VOLUME_LABEL: "hostpath"}},
        "spec": {
            "capacity": {"storage": requests.get("storage", "1Gi")},
            "accessModes": claim.spec.access_modes or ["ReadWriteOnce"],
            "volumeMode": claim.spec.volume_mode or "Filesystem",
            "storageClassName": claim.spec.storage_class_name or "",
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(folder), "type": "Directory"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta.namespace,
                "name": meta.name,
                "uid": meta.uid,
            },
        },
    }


def provision(api: client.CoreV1Api, claim: client.V1PersistentVolumeClaim, volumes_dir: Path) -> str:
    """Make the claim's folder and volume, and bind the claim to it (a retry finds what was made already)."""
    meta = claim.metadata
    folder = volumes_dir / volume_name(claim)
    folder.mkdir(parents=True, exist_ok=True)
    # Whatever uid the pod runs as (the charts' images use several) may write: hostPath volumes get
    # no fsGroup, and the claim does not say which pod will use it.
    folder.chmod(0o777)
    try:
        api.create_persistent_volume(host_volume(claim, folder))
    except ApiException as exc:
        if exc.status != 409:
            raise
    api.patch_persistent_volume_status(volume_name(claim), {"status": {"phase": "Bound"}})
    # What the PV controller writes when it binds: volumeName (which may be set once on a claim that
    # has none) and the annotation the scheduler reads as "fully bound"; without it a pod of the claim
    # is never scheduled.
    bind = {"metadata": {"annotations": {BIND_COMPLETED: "yes"}}, "spec": {"volumeName": volume_name(claim)}}
    api.patch_namespaced_persistent_volume_claim(meta.name, meta.namespace, bind)
    api.patch_namespaced_persistent_volume_claim_status(meta.name, meta.namespace, {"status": bound_status(claim)})
    return f"provisioned {meta.namespace}/{meta.name} at {folder}"


def remove_volume(api: client.CoreV1Api, name: str, volumes_dir: Path) -> str:
    """Delete one of our volumes and its folder (a name the binder made, never a path the cluster reports)."""
    if not VOLUME_NAME.match(name):
        raise ValueError(f"not a volume of the binder: {name!r}")
    with contextlib.suppress(ApiException):
        # Released first, as the PV controller would mark it: pv-protection keeps a Bound volume for ever.
        api.patch_persistent_volume_status(name, {"status": {"phase": "Released"}})
        api.delete_persistent_volume(name)
    shutil.rmtree(volumes_dir / name, ignore_errors=True)
    return f"removed volume {name}"


def settle(api: client.CoreV1Api, claim: client.V1PersistentVolumeClaim, volumes_dir: Path | None = None) -> str | None:
    """Bind the claim if it is pending, release it if it is deleted; return what was done, if anything."""
    meta = claim.metadata
    bound = bool(claim.status and claim.status.phase == "Bound")
    if meta.deletion_timestamp:
        # The pvc-protection controller drops this finalizer once no pod uses the claim; without the
        # node it does not run (no pod ever does), so a deleted claim would stay Terminating for ever.
        if volumes_dir is None and PROTECTION in (meta.finalizers or []):
            finalizers = [f for f in meta.finalizers if f != PROTECTION]
            # A JSON patch: a strategic merge patch would merge the list instead of replacing it.
            patch = [{"op": "replace", "path": "/metadata/finalizers", "value": finalizers}]
            api.patch_namespaced_persistent_volume_claim(meta.name, meta.namespace, patch)
            return f"released {meta.namespace}/{meta.name}"
    elif volumes_dir is not None:
        # A claim someone bound to a volume of their own by name is theirs to look after.
        if claim.spec.volume_name and claim.spec.volume_name != volume_name(claim):
            return None
        if bound and BIND_COMPLETED in (meta.annotations or {}):
            return None
        return provision(api, claim, volumes_dir)
    elif not bound:
        api.patch_namespaced_persistent_volume_claim_status(meta.name, meta.namespace, {"status": bound_status(claim)})
        return f"bound {meta.namespace}/{meta.name}"
    return None


def reconcile(api: client.CoreV1Api, claims: list | None = None, volumes_dir: Path | None = None) -> list[str]:
    """Settle every claim (by default, every claim there is), and with the node remove the volumes of
    claims that are gone; return what was done, one line each."""
    if claims is None:
        claims = api.list_persistent_volume_claim_for_all_namespaces().items
    done = [line for claim in claims if (line := settle(api, claim, volumes_dir))]
    if volumes_dir is not None:
        alive = {volume_name(claim) for claim in claims}
        ours = api.list_persistent_volume(label_selector=VOLUME_LABEL).items
        done += [remove_volume(api, v.metadata.name, volumes_dir) for v in ours if v.metadata.name not in alive]
    return done


def serve(api: client.CoreV1Api, volumes_dir: Path | None = None) -> None:
    """Settle every claim, then each new or changed one as the API server reports it.

    A watch answers within milliseconds, where polling would not: `helm --wait` first looks a tenth
    of a second after it creates a claim, and when the claim is not Bound yet it looks again only 2 s later.
    """
    listing = api.list_persistent_volume_claim_for_all_namespaces()
    for line in reconcile(api, listing.items, volumes_dir):
        print(line, flush=True)
    events = watch.Watch().stream(
        api.list_persistent_volume_claim_for_all_namespaces,
        resource_version=listing.metadata.resource_version,
        timeout_seconds=WATCH_SECONDS,
    )
    for event in events:
        claim = event["object"]
        if event["type"] in ("ADDED", "MODIFIED"):
            line = settle(api, claim, volumes_dir)
        elif event["type"] == "DELETED" and volumes_dir is not None:
            line = remove_volume(api, volume_name(claim), volumes_dir)
        else:
            line = None
        if line:
            print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.volumes", description=__doc__.splitlines()[0])
    parser.add_argument("--volumes-dir", type=Path, help="with the node: make hostPath volumes in this folder")
    volumes_dir = parser.parse_args(argv).volumes_dir
    api = None
    while True:
        try:
            if api is None:
                document = yaml.safe_load(config.KUBECONFIG.read_text())
                api = client.CoreV1Api(kube_config.new_client_from_config_dict(document))
            serve(api, volumes_dir)  # returns when the watch ends; then list again, as informers do
        except Exception as exc:  # keep serving: the API server may restart under us
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            api = None
            time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
