"""The deploy engine with in-memory Helm and Kubernetes: states, links, follow-ups, failures, recovery."""

import os
import threading

import bcrypt
import pytest
from django.utils import timezone

from platforms import deploy, tasks
from platforms.models import Operation, Platform
from platforms.services.errors import BadInput, Unavailable
from platforms.services.types import ServiceLinkInfo


def link(name: str, ready: bool) -> ServiceLinkInfo:
    return ServiceLinkInfo(name=name, host=f"{name}.zenith.example" if ready else "", ready=ready)


def request(platform: Platform, kind: str, actor=None) -> Operation:
    return Operation.objects.request(platform, kind, actor)


def test_install_runs_helm_with_complete_values_and_waits_for_links(platform, fake_helm, fake_cluster, enqueued):
    operation = request(platform, "install")
    fake_cluster.cluster.links["demo"] = [link("binderhub", False), link("jupyterhub", False)]
    tasks.run_operation(operation.pk)
    tasks.sync_links(platform.pk)  # the task the install queued for its links
    operation.refresh_from_db()
    platform.refresh_from_db()
    assert (operation.state, operation.helm_revision) == ("succeeded", 1)
    assert operation.worker.endswith(f":{os.getpid()}")
    spec = fake_helm.specs[0]
    assert (spec.name, spec.chart, spec.version) == ("demo", "binderhub-platform", "0.1.0")
    assert set(spec.values) == {"platform", "binderhub", "docker-registry"}
    assert platform.status == Platform.Status.INSTALLING
    assert platform.status_message == "Release deployed; waiting for Zenith to expose BinderHub, JupyterHub."
    assert enqueued == []


@pytest.mark.parametrize("kind", ["install", "upgrade"])
def test_a_deploy_that_succeeded_queues_its_link_sync_as_a_task_of_its_own(
    kind, platform, fake_helm, fake_cluster, queued, monkeypatch, django_capture_on_commit_callbacks
):
    """Not run on the deploy's worker slot: the worker's next operation starts first."""
    if kind == "upgrade":
        tasks.run_operation(request(platform, "install").pk)
    monkeypatch.setattr(deploy, "sync_links", lambda platform_id: pytest.fail("links read on the deploy's slot"))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.run_operation(request(platform, kind).pk)
    assert queued == [("platforms.tasks.sync_links", platform.pk)]


def test_a_failed_deploy_queues_no_link_sync(
    platform, fake_helm, fake_cluster, queued, django_capture_on_commit_callbacks
):
    tasks.run_operation(request(platform, "install").pk)
    fake_helm.error = BadInput("values refused")
    with django_capture_on_commit_callbacks(execute=True):
        tasks.run_operation(request(platform, "upgrade").pk)
    assert Operation.objects.latest("pk").state == "failed"
    assert queued == []


def test_an_uninstall_queues_no_link_sync(
    platform, fake_helm, fake_cluster, queued, django_capture_on_commit_callbacks
):
    tasks.run_operation(request(platform, "install").pk)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.run_operation(request(platform, "uninstall").pk)
    assert not Platform.objects.filter(pk=platform.pk).exists()
    assert queued == []


def test_links_becoming_ready_bring_a_follow_up_upgrade_then_deployed(
    platform, fake_helm, fake_cluster, enqueued, django_capture_on_commit_callbacks
):
    tasks.run_operation(request(platform, "install").pk)
    fake_cluster.cluster.links["demo"] = [link("binderhub", True), link("jupyterhub", True)]
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sync_links(platform.pk)
    follow_up = Operation.objects.get(pk=enqueued[0])
    assert (follow_up.kind, follow_up.actor) == ("upgrade", None)
    assert follow_up.reason == "Set the service addresses Zenith reported"
    tasks.run_operation(follow_up.pk)
    tasks.sync_links(platform.pk)
    assert "client binderhub-demo ensured, and sends sign-ins back to https://jupyterhub.zenith.example/hub/" in (
        Operation.objects.get(pk=follow_up.pk).output
    )
    hub = fake_helm.specs[-1].values["binderhub"]
    assert hub["config"]["BinderHub"]["hub_url"] == "https://jupyterhub.zenith.example"
    platform.refresh_from_db()
    assert platform.status == Platform.Status.DEPLOYED
    assert platform.ready_links() == {
        "binderhub": "https://binderhub.zenith.example",
        "jupyterhub": "https://jupyterhub.zenith.example",
    }
    assert len(enqueued) == 1  # no further follow-up once the values match the links


def test_generated_secrets_are_created_once_and_sent_unchanged(platform, fake_helm, fake_cluster, enqueued):
    tasks.run_operation(request(platform, "install").pk)
    first = platform.__class__.objects.get(pk=platform.pk).secrets
    Platform.objects.filter(pk=platform.pk).update(status="deployed")
    tasks.run_operation(request(platform, "upgrade").pk)
    assert Platform.objects.get(pk=platform.pk).secrets == first
    htpasswds = [s.values["docker-registry"]["secrets"]["htpasswd"] for s in fake_helm.specs]
    assert htpasswds == [first["registry_htpasswd"]] * 2
    user, digest = first["registry_htpasswd"].split(":", 1)
    assert user == "binderhub" and bcrypt.checkpw(first["registry_password"].encode(), digest.encode())
    assert [s.values["binderhub"]["registry"]["password"] for s in fake_helm.specs] == [first["registry_password"]] * 2
    assert "registry_password" not in platform.secrets_encrypted


def test_helm_error_fails_the_platform_with_the_message(platform, fake_helm, fake_cluster):
    fake_helm.error = BadInput("Helm refused the chart or its values: values don't meet the specifications")
    operation = request(platform, "install")
    tasks.run_operation(operation.pk)
    operation.refresh_from_db()
    platform.refresh_from_db()
    assert operation.state == "failed"
    assert "values don't meet" in operation.error
    assert platform.status == Platform.Status.FAILED
    assert platform.status_message.startswith("Install failed: Helm refused")


def test_unexpected_error_is_logged_generic_and_re_raised(platform, fake_helm, fake_cluster, monkeypatch):
    monkeypatch.setattr(fake_helm, "install_or_upgrade", lambda spec: 1 / 0)
    operation = request(platform, "install")
    with pytest.raises(ZeroDivisionError):
        tasks.run_operation(operation.pk)
    operation.refresh_from_db()
    assert operation.error == deploy.GENERIC_FAILURE
    assert Platform.objects.get(pk=platform.pk).status == Platform.Status.FAILED


def test_running_an_operation_twice_does_nothing_the_second_time(platform, fake_helm, fake_cluster):
    operation = request(platform, "install")
    tasks.run_operation(operation.pk)
    tasks.run_operation(operation.pk)
    assert len(fake_helm.specs) == 1


def test_uninstall_removes_release_namespace_and_platform(platform, fake_helm, fake_cluster):
    tasks.run_operation(request(platform, "install").pk)
    fake_cluster.cluster.namespaces["demo"] = "Active"
    Platform.objects.filter(pk=platform.pk).update(status="deployed")
    tasks.run_operation(request(platform, "uninstall").pk)
    assert "demo" not in fake_helm.releases
    assert fake_cluster.cluster.namespaces == {}
    assert not Platform.objects.filter(pk=platform.pk).exists()


def test_namespace_stuck_terminating_fails_with_a_clear_message(platform, fake_helm, fake_cluster, settings):
    settings.NAMESPACE_DELETE_TIMEOUT_SECONDS = 0
    fake_cluster.cluster.namespaces["demo"] = "Active"
    fake_cluster.cluster.stuck_namespaces.add("demo")
    tasks.run_operation(request(platform, "uninstall").pk)
    platform.refresh_from_db()
    assert platform.status == Platform.Status.FAILED
    assert "namespace demo is still Terminating" in platform.status_message
    assert "Retry" in platform.status_message


def test_unreachable_cluster_fails_the_uninstall(platform, fake_helm, fake_cluster):
    fake_helm.error = Unavailable("Helm failed: Kubernetes cluster unreachable")
    tasks.run_operation(request(platform, "uninstall").pk)
    platform.refresh_from_db()
    assert platform.status == Platform.Status.FAILED
    assert "cluster unreachable" in platform.status_message


def test_reconcile_requeues_an_operation_whose_worker_died(platform, enqueued):
    operation = request(platform, "install")
    Operation.objects.filter(pk=operation.pk).update(
        state="running", worker=f"{deploy.socket.gethostname()}:999999", started_at=timezone.now()
    )
    tasks.reconcile()
    operation.refresh_from_db()
    assert (operation.state, operation.worker) == ("queued", "")
    assert enqueued == [operation.pk]


def test_reconcile_leaves_an_operation_of_a_live_worker_alone(platform, enqueued):
    operation = request(platform, "install")
    Operation.objects.filter(pk=operation.pk).update(
        state="running", worker=deploy.worker_id(), started_at=timezone.now()
    )
    tasks.reconcile()
    operation.refresh_from_db()
    assert operation.state == "running"
    assert enqueued == []


def test_reconcile_marks_a_deployed_platform_without_release_failed(platform, fake_helm, fake_cluster, enqueued):
    Platform.objects.filter(pk=platform.pk).update(status="deployed")
    tasks.reconcile()
    platform.refresh_from_db()
    assert platform.status == Platform.Status.FAILED
    assert "release is missing" in platform.status_message


# --- Access in Keycloak, set up by the same operations ---------------------------------------------


def test_install_ensures_groups_and_client_beside_helm(platform, fake_helm, fake_cluster, directory):
    directory.calls.clear()
    operation = request(platform, "install")
    tasks.run_operation(operation.pk)
    for path in ("/platforms/demo", "/platforms/demo/binderhub", "/platforms/demo/jupyterhub"):
        assert path in directory.groups
    client = directory.clients["binderhub-demo"]
    assert client["secret"] == Platform.objects.get(pk=platform.pk).secrets["oidc_client_secret"]
    assert client["redirect_uris"] == []  # no service link known yet
    assert len(fake_helm.specs) == 1
    operation.refresh_from_db()
    assert "client binderhub-demo" in operation.output


def test_follow_up_upgrade_gives_the_client_the_services_callbacks(
    platform, fake_helm, fake_cluster, enqueued, directory, django_capture_on_commit_callbacks
):
    tasks.run_operation(request(platform, "install").pk)
    fake_cluster.cluster.links["demo"] = [link("binderhub", True), link("jupyterhub", True)]
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sync_links(platform.pk)
    tasks.run_operation(enqueued[0])
    assert directory.clients["binderhub-demo"]["redirect_uris"] == [
        "https://jupyterhub.zenith.example/hub/oauth_callback",
        "https://binderhub.zenith.example/_oidc/callback",
        "https://jupyterhub.zenith.example/_oidc/callback",
    ]


def test_keycloak_down_fails_the_install_clearly_though_helm_deployed(platform, fake_helm, fake_cluster, directory):
    directory.error = Unavailable("Keycloak did not answer in time to read group /platforms/demo (timeout 10s).")
    operation = request(platform, "install")
    tasks.run_operation(operation.pk)
    platform.refresh_from_db()
    assert platform.status == Platform.Status.FAILED
    assert platform.status_message.startswith(
        "Install failed: Helm deployed revision 1, but access in Keycloak could not be set up, so nobody can sign in"
    )
    assert "Retry to set it up." in platform.status_message
    directory.error = None
    Platform.objects.filter(pk=platform.pk).update(status="failed")
    tasks.run_operation(request(platform, "install").pk)  # a retry re-ensures and goes on
    assert "binderhub-demo" in directory.clients
    assert Platform.objects.get(pk=platform.pk).status == Platform.Status.INSTALLING


def test_uninstall_removes_the_client_and_groups_after_the_namespace(platform, fake_helm, fake_cluster, directory):
    from django.contrib.auth.models import Group

    tasks.run_operation(request(platform, "install").pk)
    Group.objects.create(name="/platforms/demo/binderhub")
    Group.objects.create(name="/platforms/demo-2")
    Platform.objects.filter(pk=platform.pk).update(status="deployed")
    tasks.run_operation(request(platform, "uninstall").pk)
    assert "binderhub-demo" not in directory.clients
    assert not [path for path in directory.groups if path.startswith("/platforms/demo")]
    assert not Group.objects.filter(name__startswith="/platforms/demo/").exists()
    assert Group.objects.filter(name="/platforms/demo-2").exists()


def test_keycloak_down_at_uninstall_fails_and_a_retry_finishes(platform, fake_helm, fake_cluster, directory):
    tasks.run_operation(request(platform, "install").pk)
    Platform.objects.filter(pk=platform.pk).update(status="deployed")
    directory.error = Unavailable("Keycloak did not answer in time to look up client binderhub-demo.")
    tasks.run_operation(request(platform, "uninstall").pk)
    platform.refresh_from_db()
    assert platform.status == Platform.Status.FAILED
    assert "release and namespace are removed, but not the Keycloak client" in platform.status_message
    directory.error = None
    tasks.run_operation(request(platform, "uninstall").pk)
    assert not Platform.objects.filter(pk=platform.pk).exists()
    assert "binderhub-demo" not in directory.clients


def test_ingress_platform_client_has_only_jupyterhubs_callback(platform, cluster):
    from platforms.provisioning import redirect_uris

    cluster.exposure = "ingress"
    cluster.ingress_base_domain = "apps.example.org"
    cluster.save()
    platform.refresh_from_db()
    assert redirect_uris(deploy.values_input(platform)) == [
        "https://jupyterhub-demo.apps.example.org/hub/oauth_callback"
    ]


@pytest.mark.parametrize(
    "fqdn", ["evil.example.com/path", 'x.example.org/"><script>alert(1)</script>', "user@x.example.org", "10.0.0.1"]
)
def test_a_hostile_address_is_never_recorded_sent_to_keycloak_or_helm_and_the_platform_waits(
    platform, fake_helm, fake_cluster, enqueued, directory, fqdn
):
    tasks.run_operation(request(platform, "install").pk)
    fake_cluster.cluster.links["demo"] = [
        ServiceLinkInfo(name="binderhub", host="binderhub.zenith.example", ready=True),
        ServiceLinkInfo(name="jupyterhub", host=fqdn, ready=True),
    ]
    tasks.sync_links(platform.pk)
    platform.refresh_from_db()
    assert platform.status == Platform.Status.INSTALLING
    assert "is not used" in platform.status_message and "JupyterHub" in platform.status_message
    assert platform.ready_links() == {"binderhub": "https://binderhub.zenith.example"}
    assert enqueued == []  # no follow-up upgrade: nothing of it reaches Helm values
    uris = directory.clients["binderhub-demo"]["redirect_uris"]
    assert not any("evil" in uri or "script" in uri or "10.0.0.1" in uri for uri in uris)


def test_outside_the_clusters_zenith_base_domain_is_refused(platform, fake_helm, fake_cluster, enqueued, directory):
    platform.cluster.zenith_base_domain = "apps.example.org"
    platform.cluster.save()
    tasks.run_operation(request(platform, "install").pk)
    fake_cluster.cluster.links["demo"] = [
        ServiceLinkInfo(name="binderhub", host="binderhub.apps.example.org", ready=True),
        ServiceLinkInfo(name="jupyterhub", host="jupyterhub.zenith.example", ready=True),
    ]
    tasks.sync_links(platform.pk)
    platform.refresh_from_db()
    assert "not under the cluster's Zenith base domain apps.example.org" in platform.status_message
    assert platform.status == Platform.Status.INSTALLING
    assert enqueued == []


def test_the_registry_gets_the_lowest_node_port_free_on_the_cluster_and_keeps_it(
    platform, fake_helm, fake_cluster, settings
):
    settings.REGISTRY_NODE_PORT_MIN, settings.REGISTRY_NODE_PORT_MAX = 30000, 30010
    fake_cluster.cluster.node_ports = {30000, 30001}  # used by other Services on the cluster
    other = Platform.objects.create(
        name="other", cluster=platform.cluster, app_version="0.1.0", registry_node_port=30002
    )
    tasks.run_operation(request(platform, "install").pk)
    platform.refresh_from_db()
    assert platform.registry_node_port == 30003
    assert fake_helm.specs[-1].values["docker-registry"]["service"] == {"type": "NodePort", "nodePort": 30003}
    Platform.objects.filter(pk=platform.pk).update(status="deployed")
    fake_cluster.cluster.node_ports = {30003}  # now its own registry's
    tasks.run_operation(request(platform, "upgrade").pk)
    assert Platform.objects.get(pk=platform.pk).registry_node_port == 30003
    assert other.registry_node_port == 30002


def test_a_node_port_taken_before_helm_installs_is_chosen_again_at_the_retry(
    platform, fake_helm, fake_cluster, settings
):
    settings.REGISTRY_NODE_PORT_MIN, settings.REGISTRY_NODE_PORT_MAX = 30000, 30010
    fake_helm.error = BadInput(
        'Helm refused the chart or its values: Service "registry" is invalid: spec.ports[0].nodePort: '
        "Invalid value: 30000: provided port is already allocated"
    )
    first = request(platform, "install")
    tasks.run_operation(first.pk)
    first.refresh_from_db()
    assert first.state == "failed"
    assert "The registry's NodePort 30000 was taken meanwhile; Retry chooses another." in first.error
    assert Platform.objects.get(pk=platform.pk).registry_node_port is None
    fake_helm.error = None
    fake_cluster.cluster.node_ports = {30000}  # the Service that took it
    tasks.run_operation(request(platform, "install").pk)
    assert Platform.objects.get(pk=platform.pk).registry_node_port == 30001


def test_no_free_node_port_fails_the_install_clearly(platform, fake_helm, fake_cluster, settings):
    settings.REGISTRY_NODE_PORT_MIN, settings.REGISTRY_NODE_PORT_MAX = 30000, 30001
    fake_cluster.cluster.node_ports = {30000, 30001}
    operation = request(platform, "install")
    tasks.run_operation(operation.pk)
    operation.refresh_from_db()
    assert operation.state == "failed"
    assert "No NodePort is free for the registry between 30000 and 30001" in operation.error
    assert fake_helm.specs == []


def test_keycloak_work_does_not_wait_in_front_of_helm(platform, fake_helm, fake_cluster, directory, monkeypatch):
    helm_started = threading.Event()
    original_install, original_ensure = fake_helm.install_or_upgrade, directory.ensure_groups

    def install(spec):
        helm_started.set()
        return original_install(spec)

    def ensure_groups(paths, likely_new=False):
        # Done serially before helm, this would wait out its timeout and fail the operation.
        assert helm_started.wait(5), "Keycloak's work ran before helm started"
        return original_ensure(paths, likely_new)

    monkeypatch.setattr(fake_helm, "install_or_upgrade", install)
    monkeypatch.setattr(directory, "ensure_groups", ensure_groups)
    operation = request(platform, "install")
    tasks.run_operation(operation.pk)
    operation.refresh_from_db()
    assert operation.state == "succeeded", operation.error


def test_a_worker_process_prepares_helm_as_it_starts_and_a_failure_is_only_logged(fake_helm, monkeypatch, caplog):
    tasks.prepare_worker(sender=None, proc_name="Process-1")
    assert fake_helm.prepared

    def broken() -> None:
        raise OSError("helm: not found")

    monkeypatch.setattr(fake_helm, "prepare", broken)
    tasks.prepare_worker(sender=None, proc_name="Process-2")
    assert "Process-2 could not prepare helm" in caplog.text
    assert "Process-2 is ready for operations" in caplog.text


def test_a_first_install_creates_its_groups_and_client_without_looking_for_them_first(platform, fake_helm, directory):
    tasks.run_operation(request(platform, "install").pk)
    assert "find_group" not in directory.calls and "find_client" not in directory.calls, directory.calls
    assert directory.calls.count("create_group") == 3 and directory.calls.count("create_client") == 1


def test_a_retried_install_and_an_upgrade_look_for_their_groups_and_client_first(platform, fake_helm, directory):
    retried = request(platform, "install")
    Operation.objects.filter(pk=retried.pk).update(retries=1)
    tasks.run_operation(retried.pk)
    assert directory.calls[0] == "find_group" and "find_client" in directory.calls, directory.calls
    directory.calls.clear()
    Platform.objects.filter(pk=platform.pk).update(status="deployed")
    tasks.run_operation(request(platform, "upgrade").pk)
    assert "create_group" not in directory.calls and "create_client" not in directory.calls, directory.calls
