"""The audit log page and its CSV and JSON exports: filters, safety of the values, refusals."""

import csv
import datetime
import io
import json

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from platforms.models import AuditEvent
from tests.conftest import make_user


def at(day: int, hour: int = 12) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime(2026, 11, day, hour))


@pytest.fixture
def events(admin_user):
    """A month's log: launches, access changes of bob, the console's own repairs."""
    bob = User.objects.filter(username="bob").first() or make_user("bob", [])
    rows = [
        (admin_user, "platform.launch", "demo", "version 1.0.0", at(2)),
        (admin_user, "access.add", "/platforms/demo/jupyterhub", "bob <bob@example.org>", at(3)),
        (bob, "platform.launch", "other", "version 1.0.0", at(4)),
        (None, "access.auto-repair", "/platforms/demo", "group re-created", at(5)),
        (admin_user, "access.add", "/platforms/other", "bobby", at(6)),
        (admin_user, "platform.delete", "demo", "", at(7, 23)),
        (admin_user, "platform.launch", "demo-two", '=HYPERLINK("http://evil")', at(8)),
    ]
    for actor, action, target, detail, when in rows:
        event = AuditEvent.objects.create(actor=actor, action=action, target=target, detail=detail)
        AuditEvent.objects.filter(pk=event.pk).update(at=when)


def export(client, fmt: str, **filters) -> list[dict]:
    response = client.get(reverse(f"audit_export_{fmt}"), filters)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment; filename=")
    body = b"".join(response.streaming_content).decode()
    if fmt == "json":
        return json.loads(body)
    return list(csv.DictReader(io.StringIO(body)))


def targets(records: list[dict]) -> list[str]:
    return [f"{record['action']} {record['target']}" for record in records]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_the_platform_filter_takes_its_groups_and_not_a_platform_whose_name_starts_the_same(admin_client, events, fmt):
    records = export(admin_client, fmt, platform="demo")
    assert targets(records) == [
        "platform.delete demo",
        "access.auto-repair /platforms/demo",
        "access.add /platforms/demo/jupyterhub",
        "platform.launch demo",
    ]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_the_person_filter_takes_what_they_did_and_what_was_done_to_their_access(admin_client, events, fmt):
    records = export(admin_client, fmt, person="bob")
    assert targets(records) == ["platform.launch other", "access.add /platforms/demo/jupyterhub"]


def test_dates_are_whole_days_in_the_consoles_time_zone(admin_client, events):
    records = export(admin_client, "json", since="2026-11-05", until="2026-11-07")
    assert targets(records) == [
        "platform.delete demo",
        "access.add /platforms/other",
        "access.auto-repair /platforms/demo",
    ]


def test_a_date_means_that_day_where_the_console_is(admin_client, events, settings):
    late = AuditEvent.objects.create(actor=None, action="access.repair", target="/platforms/late")
    AuditEvent.objects.filter(pk=late.pk).update(at=datetime.datetime(2026, 11, 8, 2, tzinfo=datetime.UTC))
    assert targets(export(admin_client, "json", since="2026-11-07", until="2026-11-07")) == ["platform.delete demo"]
    settings.TIME_ZONE = "America/New_York"  # 8 November 02:00 UTC is still the 7th there
    assert targets(export(admin_client, "json", since="2026-11-07", until="2026-11-07")) == [
        "access.repair /platforms/late",
        "platform.delete demo",
    ]


def test_filters_combine(admin_client, events):
    assert targets(export(admin_client, "csv", platform="demo", person="alice", until="2026-11-03")) == [
        "access.add /platforms/demo/jupyterhub",
        "platform.launch demo",
    ]


def test_an_export_gives_every_field_in_words_and_utc(admin_client, events):
    records = export(admin_client, "json", platform="demo", since="2026-11-05", until="2026-11-05")
    assert records == [
        {
            "at": "2026-11-05T12:00:00+00:00",
            "actor": "console",
            "action": "access.auto-repair",
            "action_words": "Access lost in Keycloak, re-created",
            "target": "/platforms/demo",
            "detail": "group re-created",
        }
    ]


def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_quoted(admin_client, events):
    (record,) = export(admin_client, "csv", platform="demo-two")
    assert record["detail"] == '\'=HYPERLINK("http://evil")'
    (record,) = export(admin_client, "json", platform="demo-two")
    assert record["detail"] == '=HYPERLINK("http://evil")'  # JSON is data, not a spreadsheet: as recorded


def test_the_page_shows_the_filtered_events_and_exports_exactly_those(admin_client, events):
    response = admin_client.get(reverse("audit_log"), {"platform": "demo", "person": "alice"})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count("<tr><td>") == 3
    assert 'href="/audit/export.csv?platform=demo&amp;person=alice"' in body
    assert "Launch requested" in body and "Deletion requested" in body


def test_the_page_unfiltered_offers_every_event_and_pages_them(admin_client, events):
    for number in range(60):
        AuditEvent.objects.create(actor=None, action="access.repair", target=f"/platforms/p{number}")
    first = admin_client.get(reverse("audit_log")).content.decode()
    assert "Export every event" in first and "Page 1 of 2 (67 events)" in first
    second = admin_client.get(reverse("audit_log"), {"page": "2"}).content.decode()
    assert second.count("<tr><td>") == 17


@pytest.mark.parametrize(
    "filters, message",
    [
        ({"since": "2026-13-01"}, "Enter a valid date"),
        ({"since": "2026-11-05", "until": "2026-11-01"}, "The end date is before the start date."),
        ({"person": "bob<script>"}, "Enter a username"),
        ({"platform": "../etc"}, "Enter a valid"),
        ({"platform": "x" * 64}, "at most 63 characters"),
    ],
)
@pytest.mark.parametrize("url", ["audit_log", "audit_export_csv", "audit_export_json"])
def test_bad_filters_are_a_form_error_not_a_500(admin_client, events, filters, message, url):
    response = admin_client.get(reverse(url), filters)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "<script>" not in response.content.decode().split("<main", 1)[-1].replace("<script src", "")


@pytest.mark.parametrize("url", ["audit_log", "audit_export_csv", "audit_export_json"])
def test_only_console_admins_read_or_export_the_log(member_client, events, url):
    response = member_client.get(reverse(url))
    assert response.status_code == 403
    assert b"bob@example.org" not in response.content


def test_an_unknown_export_format_is_not_found(admin_client):
    assert admin_client.get("/audit/export.xml").status_code == 404
