"""Rollback to an earlier revision: the rules, the worker's run with in-memory Helm, the page and its view."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from platforms import operations, tasks
from platforms.models import AuditEvent, Operation, Platform, PlatformBusy
from platforms.services.errors import BadInput, Conflict, NoAnswer
from platforms.services.helm import HISTORY_MAX
from platforms.services.types import ServiceLinkInfo
from tests.conftest import make_user
from tests.unit.test_page_accessibility import PageAudit, unnamed


def deploy(platform: Platform, kind: str = "upgrade", **options) -> Operation:
    """Save the options, then run an install or upgrade through the worker's code to success."""
    if options:
        Platform.objects.filter(pk=platform.pk).update(**options)
        platform.refresh_from_db()
    operation = Operation.objects.request(platform, kind, None)
    tasks.run_operation(operation.pk)
    operation.refresh_from_db()
    assert operation.state == "succeeded", operation.error
    platform.refresh_from_db()
    return operation


@pytest.fixture
def history(platform, fake_helm, enqueued) -> list[Operation]:
    """Revision 1 launched with the defaults, revision 2 a change of version, RAM, CPUs and servers."""
    first = deploy(platform, "install")
    second = deploy(platform, app_version="0.2.0", notebook_ram_gb=8, notebook_cpus=Decimal("2.5"), servers_per_user=5)
    return [first, second]


def run(operation: Operation) -> Operation:
    tasks.run_operation(operation.pk)
    operation.refresh_from_db()
    return operation


# --- The rules (platforms.operations) -------------------------------------------------------------


def test_rollback_records_the_operation_with_the_targets_options_and_audits(platform, admin_user, history, enqueued):
    first, _ = history
    rollback = operations.rollback(platform, first, admin_user)
    assert (rollback.kind, rollback.state, rollback.rollback_revision) == ("rollback", "queued", 1)
    # What the rollback deploys is revision 1's options, not the platform's of the moment.
    assert rollback.options == first.options
    assert rollback.options["app_version"] == "0.1.0"
    assert enqueued[-1] == rollback.pk
    assert Platform.objects.get(pk=platform.pk).status == Platform.Status.UPGRADING
    event = AuditEvent.objects.get(action="platform.rollback")
    assert (event.actor, event.target) == (admin_user, "demo")
    assert event.detail.startswith("to revision 1: version 0.1.0, 3 servers per user")


def test_rolling_back_to_the_revision_deployed_now_is_refused(platform, admin_user, history):
    with pytest.raises(operations.RollbackRefused, match="Revision 2 is the one deployed now"):
        operations.rollback(platform, history[1], admin_user)
    assert not Operation.objects.filter(kind="rollback").exists()
    assert not AuditEvent.objects.filter(action="platform.rollback").exists()


def test_only_a_succeeded_deploy_can_be_rolled_back_to(platform, admin_user, history, fake_helm):
    fake_helm.error = BadInput("Helm refused the chart or its values: no.")
    failed = Operation.objects.request(platform, "upgrade", None)
    run(failed)
    assert failed.state == "failed"
    with pytest.raises(operations.RollbackRefused, match="Only a revision that an install, upgrade or rollback"):
        operations.rollback(platform, failed, admin_user)


def test_another_platforms_operation_is_refused(platform, admin_user, history, cluster):
    other = Platform.objects.create(name="other", cluster=cluster, app_version="0.1.0")
    with pytest.raises(operations.RollbackRefused, match="not one of other's"):
        operations.rollback(other, history[0], admin_user)


def test_a_busy_platform_is_refused(platform, admin_user, history):
    Operation.objects.request(platform, "upgrade", admin_user)
    with pytest.raises(PlatformBusy):
        operations.rollback(platform, history[0], admin_user)
    assert not Operation.objects.filter(kind="rollback").exists()


def test_a_revision_older_than_helms_history_is_refused_as_gone(platform, admin_user, history):
    for ram in range(3, 3 + HISTORY_MAX):
        deploy(platform, notebook_ram_gb=ram)
    kept = operations.revisions(platform)
    assert [op.helm_revision for op in kept] == list(range(HISTORY_MAX + 2, 2, -1))
    with pytest.raises(operations.RollbackRefused, match=f"Revision 2 is gone: Helm keeps the last {HISTORY_MAX}"):
        operations.rollback(platform, history[1], admin_user)
    operations.rollback(platform, kept[-1], admin_user)  # the oldest revision Helm still has


def test_a_revision_from_before_the_release_was_installed_again_is_refused(platform, admin_user, history, fake_helm):
    fake_helm.releases.clear()  # the release was removed from the cluster: the next upgrade installs revision 1
    fake_helm.history.clear()
    again = deploy(platform, notebook_ram_gb=4)
    assert again.helm_revision == 1
    deploy(platform, notebook_ram_gb=6)
    with pytest.raises(operations.RollbackRefused, match="Revision 1 is gone"):
        operations.rollback(platform, history[0], admin_user)
    assert operations.rollback(platform, again, admin_user).options["notebook_ram_gb"] == 4


def test_a_revision_without_recorded_options_is_refused(platform, admin_user, history):
    Operation.objects.filter(pk=history[0].pk).update(options={})  # deployed before options were recorded
    history[0].refresh_from_db()
    with pytest.raises(operations.RollbackRefused, match="before the console recorded each revision's options"):
        operations.rollback(platform, history[0], admin_user)


def test_a_revision_with_a_smaller_registry_is_refused_as_a_volume_never_shrinks(platform, admin_user, history):
    deploy(platform, registry_storage_gb=20)
    with pytest.raises(operations.RollbackRefused, match="had a 10 GB container registry, and its volume is 20 GB"):
        operations.rollback(platform, history[1], admin_user)


def test_a_platform_whose_removal_failed_is_refused(platform, admin_user, history, fake_helm):
    fake_helm.error = BadInput("no")
    run(Operation.objects.request(platform, "uninstall", None))
    with pytest.raises(operations.RollbackRefused, match="is being removed"):
        operations.rollback(platform, history[0], admin_user)


# --- The worker's run (platforms.deploy) ----------------------------------------------------------


def test_rollback_runs_helm_restores_the_options_and_records_the_new_revision(platform, admin_user, history, fake_helm):
    first, second = history
    rollback = run(operations.rollback(platform, first, admin_user))
    assert (rollback.state, rollback.helm_revision) == ("succeeded", 3), rollback.error
    assert fake_helm.rollbacks == [("demo", 1)]
    assert "Rolled back to revision 1, as Helm revision 3" in rollback.output
    platform.refresh_from_db()
    assert platform.options() == first.options
    assert (platform.app_version, platform.notebook_cpus, platform.notebook_ram_gb) == ("0.1.0", Decimal("1"), 2)
    assert platform.updated_by == admin_user
    assert fake_helm.releases["demo"].chart_version == "0.1.0"
    # A rollback deploys a revision of its own, which can be returned to in turn.
    assert [op.helm_revision for op in operations.revisions(platform)] == [3, 2, 1]
    back = run(operations.rollback(platform, second, admin_user))
    assert (back.state, back.helm_revision) == ("succeeded", 4)
    platform.refresh_from_db()
    assert platform.options() == second.options
    assert run(operations.rollback(platform, rollback, admin_user)).helm_revision == 5
    platform.refresh_from_db()
    assert platform.options() == first.options


def test_a_revision_helm_no_longer_has_fails_the_rollback_and_keeps_the_options(
    platform, admin_user, history, fake_helm
):
    del fake_helm.history["demo"][1]  # deleted by helm's --history-max since the page was shown
    before = Platform.objects.get(pk=platform.pk).options()
    rollback = run(operations.rollback(platform, history[0], admin_user))
    platform.refresh_from_db()
    assert rollback.state == "failed"
    assert platform.status == Platform.Status.FAILED
    assert platform.status_message.startswith("Rollback failed: Revision 1 of demo is gone")
    assert platform.options() == before


def test_a_refusal_by_the_cluster_fails_the_rollback_and_a_retry_rolls_back_to_the_same_revision(
    platform, admin_user, history, fake_helm, enqueued
):
    fake_helm.error = BadInput(
        "The cluster refused to shrink a volume (a PersistentVolumeClaim never shrinks): ...\n"
        "Helm went back to revision 2: the release runs as it did before."
    )
    failed = run(operations.rollback(platform, history[0], admin_user))
    platform.refresh_from_db()
    assert failed.state == "failed"
    assert "refused to shrink a volume" in platform.status_message
    assert platform.app_version == "0.2.0"
    fake_helm.error = None
    retry = operations.retry(platform, admin_user)
    assert (retry.kind, retry.rollback_revision, retry.options) == ("rollback", 1, history[0].options)
    assert AuditEvent.objects.filter(action="platform.retry", detail="rollback to revision 1").exists()
    assert run(retry).state == "succeeded"
    platform.refresh_from_db()
    assert platform.app_version == "0.1.0"


def test_a_platform_that_failed_after_a_rollback_retries_as_an_upgrade(platform, admin_user, history):
    run(operations.rollback(platform, history[0], admin_user))
    Platform.objects.filter(pk=platform.pk).update(status=Platform.Status.FAILED)  # as reconcile does
    assert operations.retry_kind(platform) == "upgrade"


def test_a_cluster_that_does_not_answer_queues_the_rollback_again(platform, admin_user, history, fake_helm):
    fake_helm.error = NoAnswer("The cluster did not answer Helm: connection refused")
    rollback = run(operations.rollback(platform, history[0], admin_user))
    assert (rollback.state, rollback.retries) == ("queued", 1)
    platform.refresh_from_db()
    assert platform.status == Platform.Status.UPGRADING
    assert platform.status_message.startswith("Rollback did not finish: The cluster did not answer Helm")


def test_a_release_left_pending_by_a_dead_worker_is_recovered_first(
    platform, admin_user, history, fake_helm, monkeypatch
):
    calls = []
    real = fake_helm.rollback

    def pending_once(name, revision, cluster):
        calls.append(revision)
        if len(calls) == 1:
            raise Conflict("Another Helm operation is changing this release: ...")
        return real(name, revision, cluster)

    monkeypatch.setattr(fake_helm, "rollback", pending_once)
    monkeypatch.setattr(fake_helm, "recover_interrupted", lambda name, cluster: "Rolled back the interrupted upgrade.")
    rollback = run(operations.rollback(platform, history[0], admin_user))
    assert rollback.state == "succeeded"
    assert calls == [1, 1]
    assert rollback.output.startswith("Rolled back the interrupted upgrade.\nRolled back to revision 1")


def test_ready_links_after_a_rollback_bring_a_follow_up_upgrade(platform, admin_user, history, fake_cluster, enqueued):
    """The older revision's values may lack today's addresses (hub_url, OAuth callbacks): a follow-up puts them in."""
    ready = [
        ServiceLinkInfo(name=name, host=f"{name}.zenith.example", ready=True) for name in ("binderhub", "jupyterhub")
    ]
    fake_cluster.cluster.links["demo"] = ready
    run(operations.rollback(platform, history[0], admin_user))
    tasks.sync_links(platform.pk)  # the task the rollback queued for its links
    follow_up = Operation.objects.get(pk=enqueued[-1])
    assert (follow_up.kind, follow_up.reason) == ("upgrade", "Set the service addresses Zenith reported")
    assert follow_up.options == history[0].options


# --- The page and the view ------------------------------------------------------------------------


def rollback_url() -> str:
    return reverse("platform_rollback", args=["demo"])


def test_anonymous_is_sent_to_sign_in(platform):
    response = Client().post(rollback_url(), {"operation": "1"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("oidc_authentication_init"))


@pytest.mark.parametrize("who", ["member_client", "outsider_client"])
def test_non_admins_get_403_saying_why(request, platform, history, who):
    response = request.getfixturevalue(who).post(rollback_url(), {"operation": str(history[0].pk)})
    assert response.status_code == 403
    assert "Only console admins can roll platforms back" in response.content.decode()
    assert not Operation.objects.filter(kind="rollback").exists()


def test_get_is_not_allowed(admin_client, platform):
    assert admin_client.get(rollback_url()).status_code == 405


def test_an_unknown_platform_is_404(admin_client, db):
    response = admin_client.post(reverse("platform_rollback", args=["nope"]), {"operation": "1"})
    assert response.status_code == 404


def test_a_post_without_the_csrf_token_is_refused(admin_user, platform, history):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(rollback_url(), {"operation": str(history[0].pk)}).status_code == 403
    assert not Operation.objects.filter(kind="rollback").exists()


@pytest.mark.parametrize(
    "value", ["", "abc", "-1", "1.5", " 1", "1e3", "٣", "9" * 30, "0", "999999", "<script>", "1;DROP TABLE x"]
)
def test_junk_or_unknown_operation_ids_are_a_message_not_a_500(admin_client, platform, history, value):
    response = admin_client.post(rollback_url(), {"operation": value}, follow=True)
    assert response.status_code == 200
    assert "Choose one of the revisions listed on the platform" in response.content.decode()
    assert not Operation.objects.filter(kind="rollback").exists()


def test_an_operation_of_another_platform_is_a_message_not_a_500(admin_client, platform, history, cluster, admin_user):
    other = Platform.objects.create(name="other", cluster=cluster, app_version="0.1.0")
    foreign = Operation.objects.request(other, "install", admin_user)
    response = admin_client.post(rollback_url(), {"operation": str(foreign.pk)}, follow=True)
    assert "Choose one of the revisions listed on the platform" in response.content.decode()
    assert not Operation.objects.filter(kind="rollback").exists()


def test_a_refusal_is_shown_on_the_platform_page(admin_client, platform, history):
    response = admin_client.post(rollback_url(), {"operation": str(history[1].pk)}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("platform_detail", args=["demo"])
    assert "Revision 2 is the one deployed now." in response.content.decode()
    assert not Operation.objects.filter(kind="rollback").exists()


def test_the_admin_requests_a_rollback_from_the_page(admin_client, admin_user, platform, history, enqueued):
    response = admin_client.post(rollback_url(), {"operation": str(history[0].pk)}, follow=True)
    assert "Rollback of demo to revision 1 requested." in response.content.decode()
    rollback = Operation.objects.get(kind="rollback")
    assert (rollback.actor, rollback.rollback_revision, enqueued[-1]) == (admin_user, 1, rollback.pk)


def test_the_page_lists_revisions_with_their_options_and_a_button_for_each_earlier_one(admin_client, platform, history):
    page = admin_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    revisions = page[page.index('data-testid="revisions"') :]
    current = revisions[revisions.index('data-testid="revision-2"') : revisions.index('data-testid="revision-1"')]
    assert "(deployed now)" in current and "0.2.0" in current
    assert "5 servers per user, 2.50 CPUs and 8 GB RAM a notebook, 10 GB notebook storage" in current
    assert "Roll back to revision 2" not in page
    earlier = revisions[revisions.index('data-testid="revision-1"') :]
    assert "0.1.0" in earlier and "3 servers per user, 1 CPU and 2 GB RAM a notebook" in earlier
    assert f'name="operation" value="{history[0].pk}"' in earlier
    assert "Roll back to revision 1</button>" in earlier


def test_the_page_offers_no_rollback_while_an_operation_runs(admin_client, admin_user, platform, history):
    Operation.objects.request(platform, "upgrade", admin_user)
    page = admin_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    assert 'data-testid="revision-1"' in page
    assert "Roll back to revision" not in page


def test_a_member_sees_the_revisions_without_buttons(platform, history):
    member = make_user("carol", ["/platforms/demo"])
    client = Client()
    client.force_login(member)
    page = client.get(reverse("platform_detail", args=["demo"])).content.decode()
    assert 'data-testid="revision-1"' in page
    assert "Roll back to revision" not in page


def test_the_polled_fragment_carries_the_revisions(admin_client, platform, history):
    response = admin_client.get(reverse("platform_status", args=["demo"]), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "<html" not in body
    assert "Roll back to revision 1</button>" in body


def test_the_page_with_revisions_has_named_controls(admin_client, platform, history):
    audit = PageAudit()
    audit.feed(admin_client.get(reverse("platform_detail", args=["demo"])).content.decode())
    assert unnamed(audit) == []
    assert any(button["text"].strip() == "Roll back to revision 1" for button in audit.buttons)


def test_hostile_recorded_options_are_escaped(admin_client, platform, history):
    Operation.objects.filter(pk=history[0].pk).update(
        options={**history[0].options, "app_version": "<script>x</script>"}
    )
    page = admin_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    assert "<script>x</script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


def test_the_audit_log_says_what_was_rolled_back_to(admin_client, admin_user, platform, history):
    operations.rollback(platform, history[0], admin_user)
    page = admin_client.get(reverse("audit_log"), {"platform": "demo"}).content.decode()
    assert "Rollback requested" in page
    assert "to revision 1: version 0.1.0, 3 servers per user" in page
