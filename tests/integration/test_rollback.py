"""Rollback against the real helm and kube-apiserver of the local stack: what helm deploys, what the
console restores, and what helm and the API server refuse (a revision past helm's history, a volume
that cannot shrink)."""

import contextlib
import json
import uuid
from decimal import Decimal

import pytest
from kubernetes import client

from platforms import operations, tasks
from platforms.models import AuditEvent, Operation, Platform
from tests.integration.test_deploy import api_client, core, helm_cli, release_values, remove_platform
from tests.stack_fixtures import free_node_port
from tests.unit.test_rollback import deploy

pytestmark = pytest.mark.integration


@pytest.fixture
def new_platform(local_cluster, admin_user, real_services, kubeconfig_text, handed_to_worker):
    name = f"rb-{uuid.uuid4().hex[:6]}"
    # A registry port at random from the range's upper half, not the lowest free one the console would
    # take: other test runs install platforms on the same stack at the same time.
    platform = Platform.objects.create(
        name=name,
        cluster=local_cluster,
        app_version="0.1.0",
        registry_node_port=free_node_port(kubeconfig_text),
        created_by=admin_user,
        updated_by=admin_user,
    )
    yield platform
    remove_platform(kubeconfig_text, name)


def run(operation: Operation) -> Operation:
    tasks.run_operation(operation.pk)
    operation.refresh_from_db()
    return operation


def release_status(kubeconfig_text: str, name: str) -> dict:
    return json.loads(helm_cli(kubeconfig_text, "status", name, "-n", name, "-o", "json"))


def chart_of(kubeconfig_text: str, name: str) -> str:
    return json.loads(helm_cli(kubeconfig_text, "list", "-n", name, "-o", "json"))[0]["chart"]


def test_rollback_deploys_the_first_revision_again_and_restores_its_options(new_platform, admin_user, kubeconfig_text):
    name = new_platform.name
    install = deploy(new_platform, "install")
    upgrade = deploy(
        new_platform, app_version="0.2.0", notebook_ram_gb=8, notebook_cpus=Decimal("2.5"), servers_per_user=5
    )
    assert (install.helm_revision, upgrade.helm_revision) == (1, 2)
    hub = release_values(kubeconfig_text, name)["binderhub"]["jupyterhub"]
    assert (hub["singleuser"]["memory"]["limit"], hub["hub"]["namedServerLimitPerUser"]) == ("8G", 5)

    rollback = run(operations.rollback(new_platform, install, admin_user))

    assert (rollback.state, rollback.helm_revision, rollback.rollback_revision) == ("succeeded", 3, 1), rollback.error
    status = release_status(kubeconfig_text, name)
    assert (status["version"], status["info"]["status"]) == (3, "deployed")
    assert status["info"]["description"] == "Rollback to 1"
    assert chart_of(kubeconfig_text, name) == "binderhub-platform-0.1.0"
    hub = release_values(kubeconfig_text, name)["binderhub"]["jupyterhub"]
    assert (hub["singleuser"]["memory"]["limit"], hub["hub"]["namedServerLimitPerUser"]) == ("2G", 3)
    assert hub["singleuser"]["cpu"]["limit"] == 1
    new_platform.refresh_from_db()
    assert new_platform.options() == install.options
    assert (new_platform.app_version, new_platform.notebook_ram_gb, new_platform.servers_per_user) == ("0.1.0", 2, 3)
    assert AuditEvent.objects.filter(action="platform.rollback", target=name, actor=admin_user).count() == 1

    # And forward again: the upgrade's revision is one to roll back to as well.
    forward = run(operations.rollback(new_platform, upgrade, admin_user))
    assert (forward.state, forward.helm_revision) == ("succeeded", 4), forward.error
    assert chart_of(kubeconfig_text, name) == "binderhub-platform-0.2.0"
    assert release_values(kubeconfig_text, name)["binderhub"]["jupyterhub"]["singleuser"]["memory"]["limit"] == "8G"
    new_platform.refresh_from_db()
    assert new_platform.options() == upgrade.options


def test_a_revision_helm_pruned_from_its_history_fails_the_rollback_with_the_reason(
    new_platform, admin_user, kubeconfig_text
):
    """Revisions the console does not know of (a person's helm rollback here; a refused upgrade's two
    elsewhere) push the first out of helm's history (--history-max 10) before the console asks for it."""
    name = new_platform.name
    install = deploy(new_platform, "install")
    deploy(new_platform, notebook_ram_gb=4)
    for _ in range(9):
        helm_cli(kubeconfig_text, "rollback", name, "2", "-n", name, "--history-max", "10")
    kept = json.loads(helm_cli(kubeconfig_text, "history", name, "-n", name, "-o", "json"))
    assert [entry["revision"] for entry in kept] == list(range(2, 12))

    rollback = run(operations.rollback(new_platform, install, admin_user))

    new_platform.refresh_from_db()
    assert rollback.state == "failed"
    assert rollback.error.startswith(f"Revision 1 of {name} is gone: Helm keeps the last 10 revisions of a release")
    assert "and has 2, 3, 4, 5, 6, 7, 8, 9, 10, 11." in rollback.error
    assert new_platform.status == Platform.Status.FAILED
    assert new_platform.notebook_ram_gb == 4
    status = release_status(kubeconfig_text, name)
    assert (status["version"], status["info"]["status"]) == (11, "deployed")


@pytest.fixture
def expandable_storage_class(local_cluster, kubeconfig_text):
    """A StorageClass that lets claims grow, made the cluster's storage class (the volume binder binds any)."""
    storage = client.StorageV1Api(api_client(kubeconfig_text))
    name = f"rb-expandable-{uuid.uuid4().hex[:6]}"
    storage.create_storage_class(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": "devstack.binderadmin.local/none",
            "allowVolumeExpansion": True,
        }
    )
    local_cluster.storage_class = name
    local_cluster.save()
    yield name
    with contextlib.suppress(client.ApiException):
        storage.delete_storage_class(name)


def registry_claim_size(kubeconfig_text: str, namespace: str) -> str:
    claims = core(kubeconfig_text).list_namespaced_persistent_volume_claim(namespace).items
    (registry,) = [claim for claim in claims if claim.metadata.name.endswith("registry")]
    return registry.spec.resources.requests["storage"]


def test_the_cluster_refusing_to_shrink_the_registry_fails_the_rollback_and_helm_goes_back(
    new_platform, admin_user, kubeconfig_text, expandable_storage_class
):
    name = new_platform.name
    install = deploy(new_platform, "install")
    deploy(new_platform, registry_storage_gb=20, notebook_ram_gb=4)  # the claim grows: its class allows it
    assert registry_claim_size(kubeconfig_text, name) == "20Gi"

    # The console refuses it itself, as the edit form refuses a smaller registry...
    with pytest.raises(operations.RollbackRefused, match="a volume never shrinks"):
        operations.rollback(new_platform, install, admin_user)
    # ...so the test asks as a retry would, to see what the cluster does with it.
    rollback = run(operations.request_rollback(new_platform, 1, install.options, admin_user))

    new_platform.refresh_from_db()
    assert rollback.state == "failed"
    assert "The cluster refused to shrink a volume" in rollback.error
    assert "can not be less than" in rollback.error
    assert rollback.error.endswith("Helm went back to revision 2: the release runs as it did before.")
    assert new_platform.status == Platform.Status.FAILED
    assert new_platform.status_message.startswith("Rollback failed: The cluster refused to shrink a volume")
    assert (new_platform.registry_storage_gb, new_platform.notebook_ram_gb) == (20, 4)
    # Helm recorded the refused rollback (3) and the way back to revision 2 (4).
    status = release_status(kubeconfig_text, name)
    assert (status["version"], status["info"]["status"], status["info"]["description"]) == (
        4,
        "deployed",
        "Rollback to 2",
    )
    values = release_values(kubeconfig_text, name)
    assert values["docker-registry"]["persistence"]["size"] == "20Gi"
    assert values["binderhub"]["jupyterhub"]["singleuser"]["memory"]["limit"] == "4G"
    assert registry_claim_size(kubeconfig_text, name) == "20Gi"
