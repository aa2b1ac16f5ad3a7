"""The deploy engine against the real helm, chart repository and kube-apiserver of the local stack.

The test plays the Zenith operator by patching the Reservations' status, as ARCHITECTURE.md says.
"""

import contextlib
import json
import subprocess
import uuid

import pytest
import yaml
from kubernetes import client, config

from platforms import provisioning, tasks
from platforms.models import Operation, Platform
from platforms.services.errors import ServiceError

pytestmark = pytest.mark.integration


@pytest.fixture
def new_platform(local_cluster, admin_user, real_services, kubeconfig_text):
    name = f"it-{uuid.uuid4().hex[:6]}"
    platform = Platform.objects.create(
        name=name, cluster=local_cluster, app_version="0.1.0", created_by=admin_user, updated_by=admin_user
    )
    yield platform
    remove_platform(kubeconfig_text, name)


def remove_platform(kubeconfig_text: str, name: str) -> None:
    """Remove what installing a platform made on the local stack: release, namespace, Keycloak client and groups."""
    helm_cli(kubeconfig_text, "uninstall", name, "-n", name, check=False)
    with contextlib.suppress(client.ApiException):
        core(kubeconfig_text).delete_namespace(name)
    # The realm outlives the test.
    with contextlib.suppress(ServiceError):
        provisioning.remove_platform_access(name)


def api_client(kubeconfig_text: str) -> client.ApiClient:
    return config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text))


def core(kubeconfig_text: str) -> client.CoreV1Api:
    return client.CoreV1Api(api_client(kubeconfig_text))


def helm_cli(kubeconfig_text: str, *args: str, check: bool = True) -> str:
    from devstack import config as devstack_config
    from devstack import tools

    result = subprocess.run(
        [str(tools.helm()), *args, "--kubeconfig", str(devstack_config.KUBECONFIG)],
        capture_output=True,
        text=True,
        check=check,
    )
    return result.stdout


def release_values(kubeconfig_text: str, name: str) -> dict:
    return json.loads(helm_cli(kubeconfig_text, "get", "values", name, "-n", name, "-o", "json"))


def play_zenith_operator(kubeconfig_text: str, namespace: str, fqdns: dict[str, str] | None = None) -> dict[str, str]:
    """Mark the platform's Reservations Ready with an FQDN, as the Zenith operator (or an attacker) would."""
    objects = client.CustomObjectsApi(api_client(kubeconfig_text))
    urls = {}
    for service in ("binderhub", "jupyterhub"):
        fqdn = (fqdns or {}).get(service, f"{service}-{namespace}.zenith.example.org")
        objects.patch_namespaced_custom_object_status(
            "zenith.stackhpc.com",
            "v1alpha1",
            namespace,
            "reservations",
            service,
            {"status": {"phase": "Ready", "subdomain": f"{service}-{namespace}", "fqdn": fqdn}},
        )
        urls[service] = f"https://{fqdn}"
    return urls


def run_all(handed: list[int]) -> None:
    while handed:
        tasks.run_operation(handed.pop(0))


def test_install_links_follow_up_and_deployed(
    new_platform, handed_to_worker, kubeconfig_text, admin_user, django_capture_on_commit_callbacks
):
    name = new_platform.name
    install = Operation.objects.request(new_platform, "install", admin_user)
    tasks.run_operation(install.pk)
    tasks.sync_links(new_platform.pk)  # the task the install queued for its links

    install.refresh_from_db()
    new_platform.refresh_from_db()
    assert (install.state, install.helm_revision) == ("succeeded", 1), install.error
    assert new_platform.status == Platform.Status.INSTALLING
    assert "waiting for" in new_platform.status_message
    assert {link.name: link.ready for link in new_platform.service_links.all()} == {
        "binderhub": False,
        "jupyterhub": False,
    }
    assert "hub_url" not in release_values(kubeconfig_text, name)["binderhub"]["config"]["BinderHub"]

    urls = play_zenith_operator(kubeconfig_text, name)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sync_links(new_platform.pk)
    assert len(handed_to_worker) == 1
    run_all(handed_to_worker)
    tasks.sync_links(new_platform.pk)

    new_platform.refresh_from_db()
    assert new_platform.status == Platform.Status.DEPLOYED, new_platform.status_message
    assert new_platform.ready_links() == urls
    values = release_values(kubeconfig_text, name)
    assert values["binderhub"]["config"]["BinderHub"]["hub_url"] == urls["jupyterhub"]
    assert new_platform.operations.filter(kind="upgrade", actor=None, state="succeeded").count() == 1


@pytest.mark.parametrize(
    "fqdn",
    [
        'evil.example.com/"><script>alert(1)</script>',
        "https://evil.example.com",
        "user@evil.example.com",
        "evil.example.com:8443",
        "10.1.2.3",
        "évil.example.com",
        "a" * 300,
        "evil.example.com",  # a plain host, but outside the cluster's Zenith base domain
    ],
)
def test_a_hostile_reservation_status_reaches_no_link_keycloak_or_helm(
    new_platform, handed_to_worker, kubeconfig_text, fqdn
):
    from platforms.services import keycloak

    new_platform.cluster.zenith_base_domain = "zenith.example.org"
    new_platform.cluster.save()
    tasks.run_operation(Operation.objects.request(new_platform, "install", None).pk)
    play_zenith_operator(kubeconfig_text, new_platform.name, {"jupyterhub": fqdn})
    tasks.sync_links(new_platform.pk)

    new_platform.refresh_from_db()
    assert new_platform.status == Platform.Status.INSTALLING
    assert "is not used" in new_platform.status_message
    assert handed_to_worker == []
    assert set(new_platform.ready_links()) == {"binderhub"}
    client_id = provisioning.oidc_client_id(new_platform.name)
    admin = keycloak.get_directory()._admin
    uris = admin.get_client(admin.get_client_id(client_id))["redirectUris"]
    assert not any("evil" in uri or "10.1.2.3" in uri for uri in uris)
    assert "hub_url" not in release_values(kubeconfig_text, new_platform.name)["binderhub"]["config"]["BinderHub"]


def test_upgrade_to_the_second_version_with_changed_options(new_platform, handed_to_worker, kubeconfig_text):
    tasks.run_operation(Operation.objects.request(new_platform, "install", None).pk)
    Platform.objects.filter(pk=new_platform.pk).update(
        app_version="0.2.0", notebook_ram_gb=8, servers_per_user=5, status="deployed"
    )
    upgrade = Operation.objects.request(new_platform, "upgrade", None)
    tasks.run_operation(upgrade.pk)
    upgrade.refresh_from_db()
    assert (upgrade.state, upgrade.helm_revision) == ("succeeded", 2), upgrade.error
    values = release_values(kubeconfig_text, new_platform.name)
    hub = values["binderhub"]["jupyterhub"]
    assert hub["singleuser"]["memory"]["limit"] == "8G"
    assert hub["hub"]["namedServerLimitPerUser"] == 5
    listing = json.loads(helm_cli(kubeconfig_text, "list", "-n", new_platform.name, "-o", "json"))
    assert listing[0]["chart"] == "binderhub-platform-0.2.0"


def test_upgrade_to_a_vanished_version_fails_clearly_and_keeps_the_release(new_platform, kubeconfig_text):
    tasks.run_operation(Operation.objects.request(new_platform, "install", None).pk)
    Platform.objects.filter(pk=new_platform.pk).update(app_version="9.9.9", status="deployed")
    upgrade = Operation.objects.request(new_platform, "upgrade", None)
    tasks.run_operation(upgrade.pk)
    new_platform.refresh_from_db()
    assert new_platform.status == Platform.Status.FAILED
    assert "9.9.9" in new_platform.status_message
    status = json.loads(helm_cli(kubeconfig_text, "status", new_platform.name, "-n", new_platform.name, "-o", "json"))
    assert (status["version"], status["info"]["status"]) == (1, "deployed")


def test_values_rejected_by_the_schema_fail_and_roll_nothing_forward(new_platform, kubeconfig_text, monkeypatch):
    from platforms import deploy

    tasks.run_operation(Operation.objects.request(new_platform, "install", None).pk)
    original = deploy.build_values

    def bad_values(spec):
        values = original(spec)
        values["binderhub"]["jupyterhub"]["singleuser"]["cpu"]["limit"] = "2"  # the schema wants a number
        return values

    monkeypatch.setattr(deploy, "build_values", bad_values)
    Platform.objects.filter(pk=new_platform.pk).update(status="deployed")
    upgrade = Operation.objects.request(new_platform, "upgrade", None)
    tasks.run_operation(upgrade.pk)
    upgrade.refresh_from_db()
    assert upgrade.state == "failed"
    assert "refused the chart or its values" in upgrade.error
    status = json.loads(helm_cli(kubeconfig_text, "status", new_platform.name, "-n", new_platform.name, "-o", "json"))
    assert (status["version"], status["info"]["status"]) == (1, "deployed")


def test_uninstall_removes_release_namespace_and_platform(new_platform, kubeconfig_text, settings):
    settings.NAMESPACE_DELETE_TIMEOUT_SECONDS = 60
    name = new_platform.name
    tasks.run_operation(Operation.objects.request(new_platform, "install", None).pk)
    Platform.objects.filter(pk=new_platform.pk).update(status="deployed")
    uninstall = Operation.objects.request(new_platform, "uninstall", None)
    tasks.run_operation(uninstall.pk)
    assert not Platform.objects.filter(pk=new_platform.pk).exists()
    assert json.loads(helm_cli(kubeconfig_text, "list", "-A", "-o", "json", "--filter", f"^{name}$")) == []
    with pytest.raises(client.ApiException) as gone:
        core(kubeconfig_text).read_namespace(name)
    assert gone.value.status == 404


def test_ingress_cluster_is_deployed_with_its_ingress_links(new_platform, local_cluster, kubeconfig_text):
    local_cluster.exposure = "ingress"
    local_cluster.ingress_base_domain = "apps.example.org"
    local_cluster.ingress_tls = True
    local_cluster.save()
    install = Operation.objects.request(new_platform, "install", None)
    tasks.run_operation(install.pk)
    tasks.sync_links(new_platform.pk)
    new_platform.refresh_from_db()
    assert new_platform.status == Platform.Status.DEPLOYED, new_platform.status_message
    name = new_platform.name
    assert new_platform.ready_links() == {
        "binderhub": f"https://binderhub-{name}.apps.example.org",
        "jupyterhub": f"https://jupyterhub-{name}.apps.example.org",
    }
    # The URLs were known before the deploy, so the first install already carried hub_url.
    values = release_values(kubeconfig_text, name)
    assert values["binderhub"]["config"]["BinderHub"]["hub_url"] == f"https://jupyterhub-{name}.apps.example.org"
    assert new_platform.operations.count() == 1


def test_unreachable_cluster_is_retried_then_fails_the_install_clearly(
    new_platform, local_cluster, kubeconfig_text, settings
):
    document = yaml.safe_load(kubeconfig_text)
    document["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    local_cluster.kubeconfig = yaml.safe_dump(document)
    local_cluster.save()
    install = Operation.objects.request(new_platform, "install", None)
    tasks.run_operation(install.pk)
    install.refresh_from_db()
    new_platform.refresh_from_db()
    # A cluster that does not answer may be back soon: the install waits for a retry, and says so.
    assert (install.state, install.retries) == ("queued", 1)
    assert new_platform.status == Platform.Status.PENDING
    # The install asks the cluster for a free registry NodePort before helm runs.
    assert "The cluster's API server could not be reached" in new_platform.status_message
    assert "Retry 1 of 3 in 30 s." in new_platform.status_message
    settings.OPERATION_RETRIES = 1  # the last retry: it fails for good, with the reason
    tasks.run_operation(install.pk)
    install.refresh_from_db()
    new_platform.refresh_from_db()
    assert (install.state, new_platform.status) == ("failed", Platform.Status.FAILED)
    assert "The cluster's API server could not be reached" in new_platform.status_message
    assert "(Tried 2 times.)" in new_platform.status_message


def test_upgrade_refused_by_the_cluster_is_rolled_back_and_reported(new_platform, kubeconfig_text):
    """helm applies the upgrade, the API server refuses one object (a volume cannot shrink), and
    --atomic rolls the release back to the last good revision; the console reports why."""
    Platform.objects.filter(pk=new_platform.pk).update(registry_storage_gb=20)
    tasks.run_operation(Operation.objects.request(new_platform, "install", None).pk)
    # The edit form refuses a smaller registry; the database does not, so the test can ask for one.
    Platform.objects.filter(pk=new_platform.pk).update(registry_storage_gb=10, notebook_ram_gb=4, status="deployed")
    upgrade = Operation.objects.request(new_platform, "upgrade", None)
    tasks.run_operation(upgrade.pk)
    upgrade.refresh_from_db()
    new_platform.refresh_from_db()
    assert upgrade.state == "failed"
    assert new_platform.status == Platform.Status.FAILED
    assert "storage" in upgrade.error.lower()
    name = new_platform.name
    status = json.loads(helm_cli(kubeconfig_text, "status", name, "-n", name, "-o", "json"))
    assert status["info"]["status"] == "deployed"
    assert "Rollback to 1" in status["info"]["description"]
    values = release_values(kubeconfig_text, name)
    assert values["docker-registry"]["persistence"]["size"] == "20Gi"
    assert values["binderhub"]["jupyterhub"]["singleuser"]["memory"]["limit"] == "2G"
