"""Installs the Zenith CustomResourceDefinitions into the local kube-apiserver and waits until they are served."""

import time
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from devstack import config
from devstack.procs import DevstackError

ZENITH_CRDS = config.DEVSTACK_DIR / "crds" / "zenith.yaml"


def definitions(path: Path = ZENITH_CRDS) -> list[dict]:
    """The CustomResourceDefinition documents in path."""
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def apply(kubeconfig: Path = config.KUBECONFIG, path: Path = ZENITH_CRDS, timeout: float = 60) -> list[str]:
    """Create each CRD in path, or replace it if present; return their names once all are Established."""
    api = client.ApiextensionsV1Api(kube_config.new_client_from_config(str(kubeconfig)))
    names = []
    try:
        for document in definitions(path):
            _create_or_replace(api, document)
            names.append(document["metadata"]["name"])
        _wait_established(api, names, timeout)
    except ApiException as exc:
        raise DevstackError(f"installing the CRDs from {path.name} failed: {exc.status} {exc.reason}") from None
    return names


def _create_or_replace(api: client.ApiextensionsV1Api, document: dict, attempts: int = 3) -> None:
    name = document["metadata"]["name"]
    for attempt in range(attempts):
        try:
            api.create_custom_resource_definition(document)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        # It exists: replace it at its current resourceVersion. Another `up` racing us makes that
        # version stale (409 again), so read it afresh and retry.
        current = api.read_custom_resource_definition(name)
        body = {**document, "metadata": {**document["metadata"], "resourceVersion": current.metadata.resource_version}}
        try:
            api.replace_custom_resource_definition(name, body)
            return
        except ApiException as exc:
            if exc.status != 409 or attempt == attempts - 1:
                raise


def _wait_established(api: client.ApiextensionsV1Api, names: list[str], timeout: float) -> None:
    # The API server serves a new kind only once its CRD has the Established condition.
    deadline = time.monotonic() + timeout
    waiting = list(names)
    while waiting:
        waiting = [name for name in waiting if not _established(api.read_custom_resource_definition(name))]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise DevstackError(f"the CRDs {', '.join(waiting)} were not Established after {timeout:.0f}s")
        time.sleep(0.2)


def _established(crd: client.V1CustomResourceDefinition) -> bool:
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)
