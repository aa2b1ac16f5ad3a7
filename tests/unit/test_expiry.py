"""Platform expiry: the forms' day, a change of it alone, what the pages show, and the worker's pass."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from platforms import expiry, operations, tasks
from platforms.models import AuditEvent, Operation, Platform
from platforms.services import helm, kube
from platforms.templatetags.console import expiry_html
from tests.fakes import FakeDeployKube, FakeHelm

OPTIONS = {
    "app_version": "0.1.0",
    "servers_per_user": "3",
    "notebook_cpus": "1",
    "notebook_ram_gb": "2",
    "notebook_storage_gb": "10",
    "registry_storage_gb": "10",
}
UTC = ZoneInfo("UTC")


def today() -> date:
    return timezone.localdate(timezone=timezone.get_default_timezone())


def in_days(days: int) -> date:
    return today() + timedelta(days=days)


def launch(client, cluster, **fields):
    data = {"name": "demo2", "cluster": str(cluster.pk), **OPTIONS, **fields}
    return client.post(reverse("platform_create"), data)


def change(client, platform, **fields):
    return client.post(reverse("platform_edit", args=[platform.name]), {**OPTIONS, **fields})


def expiring(platform: Platform, expires_at: datetime, status: str = Platform.Status.DEPLOYED) -> Platform:
    Platform.objects.filter(pk=platform.pk).update(expires_at=expires_at, status=status)
    platform.refresh_from_db()
    return platform


def audit(action: str) -> list[tuple]:
    return list(AuditEvent.objects.filter(action=action).values_list("actor__username", "target", "detail"))


# --- The day a person chooses ----------------------------------------------------------------------


def test_a_day_expires_at_its_end_where_the_console_is(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    assert expiry.end_of_day(date(2027, 1, 31)) == datetime(2027, 2, 1, tzinfo=berlin)
    # The night the clocks go forward: the end of that day is still the next midnight.
    assert expiry.end_of_day(date(2027, 3, 28)) == datetime(2027, 3, 29, tzinfo=berlin)
    assert expiry.end_of_day(date(2027, 3, 28)).utcoffset() == timedelta(hours=2)
    assert expiry.day_of(datetime(2027, 1, 31, 23, 0, tzinfo=UTC)) == date(2027, 1, 31)  # 00:00 in Berlin
    assert expiry.day_of(datetime(2027, 1, 31, 15, 0, tzinfo=berlin)) == date(2027, 1, 31)


def test_launch_with_an_expiry_stores_the_end_of_that_day_and_audits_it(admin_client, cluster, stub_app_versions):
    day = in_days(10)
    assert launch(admin_client, cluster, expires_at=f"{day:%Y-%m-%d}").status_code == 302
    platform = Platform.objects.get(name="demo2")
    assert platform.expires_at == expiry.end_of_day(day)
    assert audit("platform.launch") == [("alice", "demo2", f"version 0.1.0, expires on {day:%Y-%m-%d}")]


def test_launch_without_an_expiry_never_expires(admin_client, cluster, stub_app_versions):
    assert launch(admin_client, cluster, expires_at="").status_code == 302
    assert Platform.objects.get(name="demo2").expires_at is None
    assert audit("platform.launch") == [("alice", "demo2", "version 0.1.0, no expiry")]


def test_today_is_accepted_as_it_ends_tonight(admin_client, cluster, stub_app_versions):
    assert launch(admin_client, cluster, expires_at=f"{today():%Y-%m-%d}").status_code == 302
    assert Platform.objects.get(name="demo2").expires_at == expiry.end_of_day(today())


def test_launch_refuses_a_day_that_has_passed(admin_client, cluster, stub_app_versions):
    response = launch(admin_client, cluster, expires_at=f"{in_days(-1):%Y-%m-%d}")
    assert response.status_code == 200
    assert f"{in_days(-1):%Y-%m-%d} has passed: choose today or a later day" in response.content.decode()
    assert not Platform.objects.exists()


# Not days, a day past the last one a time zone can hold the end of, and full-width digits.
JUNK_DAYS = ["tomorrow", "2027-02-30", "31/31/2027", "99999-01-01", "9999-12-31", "0000-00-00", "-1"]
JUNK_DAYS += ["２０９９-１３-０１", "2099-01-01T00:00", "<script>"]


@pytest.mark.parametrize("junk", JUNK_DAYS)
def test_a_day_that_is_no_day_or_too_far_is_a_form_error(admin_client, cluster, stub_app_versions, junk):
    response = launch(admin_client, cluster, expires_at=junk)
    assert response.status_code == 200
    assert response.context["form"].errors["expires_at"]
    assert not Platform.objects.exists()


def test_the_last_day_accepted_is_said_and_holds(admin_client, cluster, stub_app_versions):
    assert launch(admin_client, cluster, expires_at=f"{expiry.LAST_DAY:%Y-%m-%d}").status_code == 302
    assert expiry.day_of(Platform.objects.get(name="demo2").expires_at) == expiry.LAST_DAY


def test_the_form_asks_for_a_day_and_says_when_it_ends(admin_client, cluster, stub_app_versions, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    body = admin_client.get(reverse("platform_create")).content.decode()
    assert '<label for="id_expires_at">Expires on</label>' in body
    assert f'type="date" name="expires_at" min="{today():%Y-%m-%d}"' in body
    assert "At the end of this day (Europe/Berlin time) the console deletes the platform" in body


# --- A change of the expiry ------------------------------------------------------------------------


def test_changing_only_the_expiry_saves_it_without_an_upgrade_and_audits_it(admin_client, platform, stub_app_versions):
    expiring(platform, None)
    day = in_days(30)
    response = change(admin_client, platform, expires_at=f"{day:%Y-%m-%d}")
    assert response.status_code == 302
    platform.refresh_from_db()
    assert (platform.expires_at, platform.status) == (expiry.end_of_day(day), Platform.Status.DEPLOYED)
    assert not Operation.objects.exists()
    detail = f"expires on {day:%Y-%m-%d} (was no expiry); no upgrade needed"
    assert audit("platform.change") == [("alice", "demo", detail)]
    page = admin_client.get(response["Location"]).content.decode()
    assert f"demo: now expires at the end of {day:%Y-%m-%d}, with no upgrade needed." in page


def test_extending_is_not_refused_while_an_upgrade_runs(admin_client, admin_user, platform, stub_app_versions):
    expiring(platform, expiry.end_of_day(in_days(2)))
    Operation.objects.request(platform, Operation.Kind.UPGRADE, admin_user)
    assert change(admin_client, platform, expires_at=f"{in_days(60):%Y-%m-%d}").status_code == 302
    platform.refresh_from_db()
    assert platform.expires_at == expiry.end_of_day(in_days(60))
    assert platform.operations.count() == 1


def test_extending_is_refused_once_the_platform_is_being_deleted(admin_client, admin_user, platform, stub_app_versions):
    expiring(platform, expiry.end_of_day(in_days(2)))
    operations.delete(platform, admin_user)
    response = change(admin_client, platform, expires_at=f"{in_days(60):%Y-%m-%d}")
    assert response.status_code == 200
    assert "demo is being deleted; a new expiry can no longer keep it." in response.content.decode()
    platform.refresh_from_db()
    assert platform.expires_at == expiry.end_of_day(in_days(2))


def test_clearing_the_expiry_removes_it(admin_client, platform, stub_app_versions):
    day = in_days(3)
    expiring(platform, expiry.end_of_day(day))
    assert change(admin_client, platform, expires_at="").status_code == 302
    platform.refresh_from_db()
    assert platform.expires_at is None
    assert not Operation.objects.exists()
    assert audit("platform.change")[0][2] == f"no expiry (was expires on {day:%Y-%m-%d}); no upgrade needed"


def test_changing_options_and_expiry_requests_the_upgrade_with_the_expiry_in_the_audit(
    admin_client, platform, stub_app_versions
):
    day = in_days(5)
    assert change(admin_client, platform, expires_at=f"{day:%Y-%m-%d}", notebook_ram_gb="4").status_code == 302
    platform.refresh_from_db()
    assert (platform.notebook_ram_gb, platform.expires_at) == (4, expiry.end_of_day(day))
    assert platform.operations.get().kind == Operation.Kind.UPGRADE
    assert audit("platform.change") == [("alice", "demo", f"version 0.1.0, expires on {day:%Y-%m-%d}")]


def test_a_save_that_changes_nothing_still_upgrades_as_before(admin_client, platform, stub_app_versions):
    day = in_days(5)
    expiring(platform, expiry.end_of_day(day))
    assert change(admin_client, platform, expires_at=f"{day:%Y-%m-%d}").status_code == 302
    assert platform.operations.get().kind == Operation.Kind.UPGRADE


def test_a_failed_platform_gets_its_upgrade_for_a_new_expiry_too(admin_client, platform, stub_app_versions):
    expiring(platform, None, status=Platform.Status.FAILED)
    assert change(admin_client, platform, expires_at=f"{in_days(5):%Y-%m-%d}").status_code == 302
    assert platform.operations.get().kind == Operation.Kind.UPGRADE


def test_the_change_form_shows_the_current_day_and_keeps_its_exact_moment(admin_client, platform, stub_app_versions):
    moment = datetime.combine(in_days(4), datetime.min.time(), tzinfo=UTC) + timedelta(hours=15)
    expiring(platform, moment)
    body = admin_client.get(reverse("platform_edit", args=["demo"])).content.decode()
    assert f'value="{expiry.day_of(moment):%Y-%m-%d}"' in body
    response = change(admin_client, platform, expires_at=f"{expiry.day_of(moment):%Y-%m-%d}", notebook_ram_gb="3")
    assert response.status_code == 302
    platform.refresh_from_db()
    assert platform.expires_at == moment  # the same day sent back does not move it to the day's end


def test_a_change_refuses_a_day_that_has_passed_even_unchanged(admin_client, platform, stub_app_versions):
    passed = expiry.end_of_day(in_days(-2))
    expiring(platform, passed)
    response = change(admin_client, platform, expires_at=f"{in_days(-2):%Y-%m-%d}", notebook_ram_gb="3")
    assert response.status_code == 200
    assert "has passed: choose today or a later day, or leave it empty for no expiry." in response.content.decode()
    assert not Operation.objects.exists()


def test_a_change_of_the_expiry_leaves_what_the_worker_wrote_meanwhile(admin_user, platform):
    stale = Platform.objects.get(pk=platform.pk)
    Platform.objects.filter(pk=platform.pk).update(status_message="Release deployed; waiting for Zenith.")
    stale.expires_at = expiry.end_of_day(in_days(9))
    assert operations.change(stale, admin_user) is None
    platform.refresh_from_db()
    assert platform.status_message == "Release deployed; waiting for Zenith."
    assert platform.expires_at == stale.expires_at


# --- What the pages show ---------------------------------------------------------------------------


def test_time_left_reads_in_the_largest_whole_unit_and_warns_in_the_last_seven_days():
    now = datetime(2027, 1, 1, 12, tzinfo=UTC)
    far = expiry_html(now + timedelta(days=40), "deployed", now, UTC)
    assert 'class="expiry"' in far and ">expires in 1 month</time>" in far and "⚠" not in far
    week = expiry_html(now + timedelta(days=7), "deployed", now, UTC)
    assert ">expires in 1 week</time>" in week and "expiry-soon" not in week
    soon = expiry_html(now + timedelta(days=6, hours=23), "deployed", now, UTC)
    assert 'class="expiry expiry-soon"' in soon
    assert '<span aria-hidden="true">⚠ </span>expires in 6 days</time>' in soon  # the words say it, not colour alone
    assert ">expires in less than a minute</time>" in expiry_html(now + timedelta(seconds=30), "deployed", now, UTC)


def test_an_expired_platform_reads_as_being_removed_unless_it_failed():
    now = datetime(2027, 1, 1, 12, tzinfo=UTC)
    gone = expiry_html(now - timedelta(minutes=1), "uninstalling", now, UTC)
    assert "expiry-soon" in gone and gone.endswith("expired, being removed</time>")
    assert expiry_html(now, "failed", now, UTC).endswith(">expired</time>")


def test_the_tooltip_names_the_day_whose_end_it_is(settings):
    zone = ZoneInfo("Europe/Berlin")
    now = datetime(2027, 1, 1, 12, tzinfo=UTC)
    html = expiry_html(datetime(2027, 2, 1, tzinfo=zone), "deployed", now, zone)
    assert 'datetime="2027-02-01T00:00:00+01:00" title="end of 2027-01-31, CET"' in html
    assert 'title="2027-02-01 15:30 UTC"' in expiry_html(datetime(2027, 2, 1, 15, 30, tzinfo=UTC), "deployed", now, UTC)


def test_without_an_expiry_the_list_shows_a_dash():
    assert expiry_html(None, "deployed", timezone.now(), UTC) == '<span class="muted">—</span>'


def test_the_list_shows_how_long_each_platform_has_left(admin_client, cluster, admin_user):
    now = timezone.now()
    for name, expires_at in (("never", None), ("later", now + timedelta(days=40)), ("soon", now + timedelta(days=3))):
        Platform.objects.create(name=name, cluster=cluster, app_version="0.1.0", expires_at=expires_at)
    body = admin_client.get(reverse("platform_list")).content.decode()
    assert "<th>Expires</th>" in body
    cells = {name: body.split(f">{name}</a>")[1].split('data-testid="expiry">')[1].split("</td>")[0] for name in
             ("never", "later", "soon")}  # fmt: skip
    assert cells["never"] == '<span class="muted">—</span>'
    assert cells["later"].endswith(">expires in 1 month</time>") and "⚠" not in cells["later"]
    assert "expiry-soon" in cells["soon"] and cells["soon"].endswith("expires in 2 days</time>")


def test_the_platform_page_shows_the_time_left_and_the_day(admin_client, platform, settings):
    day = in_days(3)
    expiring(platform, expiry.end_of_day(day))
    body = admin_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    line = body.split('<p data-testid="expiry">')[1].split("</p>")[0]
    assert "expiry-soon" in line and "expires in 3 days" in line  # and a part of today
    assert f'<span class="muted">(end of {day:%Y-%m-%d}, UTC)</span>' in line


def test_a_platform_without_expiry_shows_no_expiry_line(member_client, platform):
    body = member_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    assert 'data-testid="platform-live"' in body and 'data-testid="expiry"' not in body


def test_the_polled_fragment_says_expired_being_removed(admin_client, admin_user, platform):
    expiring(platform, timezone.now() - timedelta(minutes=1))
    expiry.run_pass(request=tasks.request_and_enqueue)
    response = admin_client.get(reverse("platform_status", args=["demo"]), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "<html" not in body and "expired, being removed</time>" in body
    assert "<td>Expired on" in body  # the operation log names why the console deletes it


# --- The worker's pass -----------------------------------------------------------------------------


def test_an_expired_platform_is_uninstalled_by_the_pass_as_the_console_and_audited(
    platform, enqueued, monkeypatch, django_capture_on_commit_callbacks
):
    fake_kube = FakeDeployKube()
    monkeypatch.setattr(kube, "get_kube", lambda: fake_kube)
    monkeypatch.setattr(helm, "get_helm", lambda: FakeHelm(fake_kube.cluster))
    day = in_days(-1)
    expiring(platform, expiry.end_of_day(day))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.expire_platforms()
    operation = Operation.objects.get()
    assert (operation.kind, operation.actor, operation.reason) == ("uninstall", None, f"Expired on {day:%Y-%m-%d}")
    assert enqueued == [operation.pk]
    assert Platform.objects.get().status == Platform.Status.UNINSTALLING
    assert audit("platform.expire") == [(None, "demo", f"expired on {day:%Y-%m-%d}; uninstall requested")]
    tasks.run_operation(operation.pk)  # what the worker then runs: a person's Delete, to the end
    assert not Platform.objects.exists()


def test_the_audit_log_says_what_the_expiry_did(admin_client, platform, enqueued):
    expiring(platform, timezone.now() - timedelta(minutes=1))
    expiry.run_pass(request=tasks.request_and_enqueue)
    assert "Expired, deletion requested" in admin_client.get(reverse("audit_log")).content.decode()


def test_a_platform_not_yet_expired_or_without_expiry_is_left(platform, cluster, enqueued):
    expiring(platform, timezone.now() + timedelta(minutes=1))
    Platform.objects.create(name="forever", cluster=cluster, app_version="0.1.0")
    assert expiry.run_pass(request=tasks.request_and_enqueue) == []
    assert not Operation.objects.exists() and not audit("platform.expire")


def test_a_busy_platform_is_tried_again_at_the_next_pass(platform, admin_user, enqueued):
    expiring(platform, timezone.now() - timedelta(minutes=1))
    upgrade = Operation.objects.request(platform, Operation.Kind.UPGRADE, admin_user)
    assert expiry.run_pass(request=tasks.request_and_enqueue) == []
    Operation.objects.filter(pk=upgrade.pk).update(state=Operation.State.SUCCEEDED)
    Platform.objects.filter(pk=platform.pk).update(status=Platform.Status.DEPLOYED)
    assert expiry.run_pass(request=tasks.request_and_enqueue) == ["demo"]
    assert platform.operations.first().kind == Operation.Kind.UNINSTALL


def test_a_platform_already_being_deleted_is_not_asked_again(platform, admin_user, enqueued):
    expiring(platform, timezone.now() - timedelta(minutes=1))
    operations.delete(platform, admin_user)
    assert expiry.run_pass(request=tasks.request_and_enqueue) == []
    assert platform.operations.count() == 1 and not audit("platform.expire")


def test_a_failed_platform_past_its_expiry_is_uninstalled(platform, enqueued):
    expiring(platform, timezone.now() - timedelta(minutes=1), status=Platform.Status.FAILED)
    Operation.objects.create(platform=platform, kind="install", state="failed", error="the chart failed")
    assert expiry.run_pass(request=tasks.request_and_enqueue) == ["demo"]


def test_a_failed_removal_is_left_to_a_person_not_asked_again_every_pass(platform, enqueued):
    expiring(platform, timezone.now() - timedelta(minutes=1))
    assert expiry.run_pass(request=tasks.request_and_enqueue) == ["demo"]
    Operation.objects.update(state=Operation.State.FAILED, error="namespace stuck")
    Platform.objects.update(status=Platform.Status.FAILED)
    assert expiry.run_pass(request=tasks.request_and_enqueue) == []
    assert platform.operations.count() == 1 and len(audit("platform.expire")) == 1
    # Extended, and later reached again: that expiry asks once more.
    expiring(platform, timezone.now() + timedelta(days=1), status=Platform.Status.FAILED)
    assert expiry.run_pass(request=tasks.request_and_enqueue, now=timezone.now() + timedelta(days=2)) == ["demo"]


def test_an_extension_saved_after_the_pass_found_the_platform_wins(platform, enqueued):
    expiring(platform, timezone.now() - timedelta(minutes=1))
    found = list(expiry.due(timezone.now()))
    Platform.objects.filter(pk=platform.pk).update(expires_at=timezone.now() + timedelta(days=7))
    assert expiry.expire(found[0], timezone.now(), tasks.request_and_enqueue) is None
    assert not Operation.objects.exists()


def test_a_platform_deleted_after_the_pass_found_it_is_skipped(platform, enqueued):
    expiring(platform, timezone.now() - timedelta(minutes=1))
    found = list(expiry.due(timezone.now()))
    Platform.objects.all().delete()
    assert expiry.expire(found[0], timezone.now(), tasks.request_and_enqueue) is None


def test_a_second_pass_right_after_asks_nothing_more(platform, enqueued):
    expiring(platform, timezone.now() - timedelta(minutes=1))
    assert expiry.run_pass(request=tasks.request_and_enqueue) == ["demo"]
    assert expiry.run_pass(request=tasks.request_and_enqueue) == []
    assert platform.operations.count() == 1


def pass_queries() -> int:
    with CaptureQueriesContext(connection) as queries:
        expiry.run_pass(request=tasks.request_and_enqueue)
    return len(queries)


def test_the_pass_finds_the_expired_in_one_query_however_many_platforms(cluster, enqueued):
    later = timezone.now() + timedelta(days=3)

    def add(count: int, start: int) -> None:
        Platform.objects.bulk_create(
            Platform(name=f"p{i:03d}", cluster=cluster, app_version="0.1.0", expires_at=later if i % 2 else None)
            for i in range(start, start + count)
        )

    add(5, 0)
    assert pass_queries() == 1
    add(295, 5)
    assert pass_queries() == 1


def test_the_pass_is_scheduled_every_minute(db):
    schedule = Schedule.objects.get(name="binderadmin-expiry")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("platforms.tasks.expire_platforms", "I", 1)
