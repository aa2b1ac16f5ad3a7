"""The worker's scheduled check that Keycloak still has the platforms' groups and clients (in-memory directory)."""

import pytest

from platforms import access_repair, deploy, provisioning, tasks
from platforms.access_rules import platform_groups
from platforms.models import AuditEvent, Operation, Platform
from platforms.services.errors import BadInput, Unavailable


def launch(cluster, admin_user, name: str, status: str = "deployed") -> Platform:
    """A platform row with its groups and client in the directory, as its install leaves them."""
    platform = Platform.objects.create(name=name, cluster=cluster, app_version="0.1.0", created_by=admin_user)
    provisioning.ensure_platform_access(deploy.values_input(platform))
    Platform.objects.filter(pk=platform.pk).update(status=status)
    return platform


@pytest.fixture
def demo(cluster, admin_user) -> Platform:
    return launch(cluster, admin_user, "demo")


def test_a_lost_group_and_client_are_re_created_by_the_scheduled_pass_and_audited(demo, directory):
    directory.remove_group("/platforms/demo/jupyterhub")
    directory.remove_client("binderhub-demo")
    tasks.repair_lost_access()
    assert set(platform_groups("demo").values()) <= set(directory.groups)
    assert directory.clients["binderhub-demo"]["secret"] == demo.secrets["oidc_client_secret"]
    event = AuditEvent.objects.get()
    assert (event.actor, event.action, event.target) == (None, "access.auto-repair", "/platforms/demo")
    assert event.detail.startswith("Keycloak had lost /platforms/demo/jupyterhub, client binderhub-demo.")


def test_a_platform_group_lost_with_its_subgroups_is_re_created_whole(demo, directory):
    directory.remove_group("/platforms/demo")
    assert access_repair.repair_lost_access(tasks.REALM_TARGET) == ["/platforms/demo"]
    assert set(platform_groups("demo").values()) <= set(directory.groups)
    assert "/platforms/demo, /platforms/demo/binderhub, /platforms/demo/jupyterhub." in AuditEvent.objects.get().detail


def test_lost_realm_groups_are_re_created_under_the_realm_target(demo, directory):
    directory.remove_group("/platforms")
    directory.remove_group("/platform-users")
    repaired = access_repair.repair_lost_access(tasks.REALM_TARGET)
    assert repaired == [tasks.REALM_TARGET, "/platforms/demo"]
    assert {"/platform-users", "/platforms", "/platforms/demo/binderhub"} <= set(directory.groups)
    realm = AuditEvent.objects.get(target=tasks.REALM_TARGET)
    assert realm.action == "access.auto-repair" and "lost /platform-users, /platforms." in realm.detail


def test_nothing_lost_changes_and_records_nothing(demo, directory):
    directory.calls.clear()
    assert access_repair.repair_lost_access(tasks.REALM_TARGET) == []
    assert not {"create_group", "create_client", "update_client"} & set(directory.calls)
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("count", [1, 30])
def test_the_check_makes_the_same_few_keycloak_calls_whatever_the_number_of_platforms(
    cluster, admin_user, directory, count
):
    for i in range(count):
        launch(cluster, admin_user, f"p{i:02}")
    directory.calls.clear()
    access_repair.repair_lost_access(tasks.REALM_TARGET)
    # One look per realm group (2), /platforms with its children and one search per service (4), the clients (1).
    assert len(directory.calls) == 7, directory.calls


def test_platforms_never_installed_being_removed_or_busy_are_left_alone(cluster, admin_user, directory):
    for name, status in [("fresh", "pending"), ("going", "uninstalling"), ("busy", "upgrading")]:
        platform = launch(cluster, admin_user, name, status)
        provisioning.remove_platform_access(name)
    Operation.objects.create(platform=platform, kind="upgrade", state="running")  # "busy": its upgrade ensures
    assert access_repair.repair_lost_access(tasks.REALM_TARGET) == []
    assert not [path for path in directory.groups if path.startswith("/platforms/")]
    assert not directory.clients


def test_a_failed_platform_keeps_its_access(cluster, admin_user, directory):
    launch(cluster, admin_user, "broken", "failed")
    directory.remove_group("/platforms/broken/binderhub")
    assert access_repair.repair_lost_access(tasks.REALM_TARGET) == ["/platforms/broken"]


def test_the_pass_runs_at_most_every_few_minutes(demo, directory):
    tasks.repair_lost_access()
    directory.remove_group("/platforms/demo/binderhub")
    directory.calls.clear()
    tasks.repair_lost_access()
    assert directory.calls == []
    assert "/platforms/demo/binderhub" not in directory.groups  # until the next pass is due


def test_reconcile_runs_the_pass(cluster, admin_user, directory, monkeypatch):
    launch(cluster, admin_user, "broken", "failed")  # a failed platform: reconcile asks Helm about no release
    directory.remove_client("binderhub-broken")
    tasks.reconcile()
    assert "binderhub-broken" in directory.clients
    assert AuditEvent.objects.filter(action="access.auto-repair", target="/platforms/broken").exists()


def test_keycloak_down_during_the_check_records_nothing(demo, directory):
    directory.remove_group("/platforms/demo/binderhub")
    directory.error = Unavailable("Keycloak did not answer in time to read group /admins (timeout 2s).")
    assert access_repair.repair_lost_access(tasks.REALM_TARGET) == []
    assert not AuditEvent.objects.exists()


def test_a_failed_repair_is_audited_and_a_silent_keycloak_ends_the_pass(cluster, admin_user, directory, monkeypatch):
    for name in ("one", "two"):
        launch(cluster, admin_user, name)
        directory.remove_client(f"binderhub-{name}")

    def time_out(spec):
        raise Unavailable(f"Keycloak did not answer in time to create client {spec.oidc_client_id} (timeout 2s).")

    monkeypatch.setattr(provisioning, "ensure_platform_access", time_out)
    assert access_repair.repair_lost_access(tasks.REALM_TARGET) == []
    event = AuditEvent.objects.get()  # "two" is not tried: it would wait for the same Keycloak
    assert (event.action, event.target) == ("access.auto-repair-failed", "/platforms/one")
    assert "Keycloak had lost client binderhub-one. Keycloak did not answer" in event.detail


def test_a_repair_refused_for_one_platform_does_not_stop_the_others(cluster, admin_user, directory, monkeypatch):
    for name in ("one", "two"):
        launch(cluster, admin_user, name)
        directory.remove_client(f"binderhub-{name}")
    ensure = provisioning.ensure_platform_access

    def refuse_one(spec):
        if spec.name == "one":
            raise BadInput("Keycloak refused to create client binderhub-one: invalid redirect URI")
        return ensure(spec)

    monkeypatch.setattr(provisioning, "ensure_platform_access", refuse_one)
    assert access_repair.repair_lost_access(tasks.REALM_TARGET) == ["/platforms/two"]
    assert AuditEvent.objects.get(target="/platforms/one").action == "access.auto-repair-failed"
