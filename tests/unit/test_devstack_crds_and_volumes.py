"""The local stack's Zenith CRDs are well formed, and its volume binder does what the missing controllers would."""

from types import SimpleNamespace

from kubernetes import client

from devstack import crds, volumes


def test_the_zenith_crds_are_the_two_namespaced_v1alpha1_kinds_with_status():
    found = {d["metadata"]["name"]: d for d in crds.definitions()}
    assert set(found) == {"reservations.zenith.stackhpc.com", "clients.zenith.stackhpc.com"}
    for document in found.values():
        spec = document["spec"]
        assert (spec["group"], spec["scope"], spec["names"]["categories"]) == (
            "zenith.stackhpc.com",
            "Namespaced",
            ["zenith"],
        )
        [version] = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        assert version["subresources"] == {"status": {}}
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True
    reservation = found["reservations.zenith.stackhpc.com"]["spec"]["versions"][0]
    assert reservation["schema"]["openAPIV3Schema"]["properties"]["spec"]["required"] == ["credentialSecretName"]
    columns = [c["name"] for c in reservation["additionalPrinterColumns"]]
    assert columns == ["Secret", "Phase", "FQDN", "Age"]


def claim(name="data", phase="Pending", deleting=False, finalizers=("kubernetes.io/pvc-protection",)):
    return client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(
            name=name,
            namespace="p1",
            deletion_timestamp="2026-01-01T00:00:00Z" if deleting else None,
            finalizers=list(finalizers),
        ),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], resources=client.V1VolumeResourceRequirements(requests={"storage": "20Gi"})
        ),
        status=client.V1PersistentVolumeClaimStatus(phase=phase),
    )


class FakeCoreApi:
    def __init__(self, claims):
        self.claims = claims
        self.calls = []

    def list_persistent_volume_claim_for_all_namespaces(self):
        return SimpleNamespace(items=self.claims)

    def patch_namespaced_persistent_volume_claim_status(self, name, namespace, body):
        self.calls.append(("status", name, body))

    def patch_namespaced_persistent_volume_claim(self, name, namespace, body):
        self.calls.append(("claim", name, body))


def test_a_pending_claim_is_bound_with_the_size_and_modes_it_asked_for():
    api = FakeCoreApi([claim("pending"), claim("bound", phase="Bound")])
    assert volumes.reconcile(api) == ["bound p1/pending"]
    assert api.calls == [
        (
            "status",
            "pending",
            {"status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "20Gi"}}},
        )
    ]


def test_a_deleted_claim_loses_only_the_protection_finalizer():
    api = FakeCoreApi([claim("gone", deleting=True, finalizers=("kubernetes.io/pvc-protection", "example.org/keep"))])
    assert volumes.reconcile(api) == ["released p1/gone"]
    patch = [{"op": "replace", "path": "/metadata/finalizers", "value": ["example.org/keep"]}]
    assert api.calls == [("claim", "gone", patch)]
    api = FakeCoreApi([claim("going", deleting=True, finalizers=("example.org/keep",))])
    assert volumes.reconcile(api) == []
