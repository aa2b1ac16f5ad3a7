"""The audit log, filtered by platform, person and dates, as rows for the page and as CSV or JSON exports."""

import csv
import datetime
import io
import json
from collections.abc import Iterator

from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone

from platforms.access_rules import platform_group
from platforms.models import AuditEvent
from platforms.templatetags.audit import action_words

EXPORT_FIELDS = ("at", "actor", "action", "action_words", "target", "detail")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection); the detail
# of an event may hold text a cluster or Keycloak reported.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
USERNAME = r"^[\w.@+-]+\Z"


class AuditFilterForm(forms.Form):
    """The filters of the audit page and its exports; every field may be left empty."""

    platform = forms.SlugField(
        required=False, max_length=63, help_text="A platform's name; deleted platforms' events are kept."
    )
    person = forms.RegexField(
        regex=USERNAME,
        required=False,
        max_length=150,
        help_text="A username: what they did, and changes to their access.",
        error_messages={"invalid": "Enter a username: letters, digits and . @ + - _ only."},
    )
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned


def start_of_day(day: datetime.date) -> datetime.datetime:
    """Midnight of the day in the console's time zone, which is what a person means by a date."""
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def filtered_events(filters: dict) -> QuerySet[AuditEvent]:
    """The events that match the cleaned filters, newest first; an empty filter matches everything."""
    events = AuditEvent.objects.select_related("actor")
    if filters.get("platform"):
        path = platform_group(filters["platform"])
        events = events.filter(Q(target=filters["platform"]) | Q(target=path) | Q(target__startswith=f"{path}/"))
    if filters.get("person"):
        person = filters["person"]
        # Access changes name the person acted on in the detail as `username` or `username <email>`.
        subject = Q(action__startswith="access.") & (Q(detail=person) | Q(detail__startswith=f"{person} <"))
        events = events.filter(Q(actor__username=person) | subject)
    if filters.get("since"):
        events = events.filter(at__gte=start_of_day(filters["since"]))
    if filters.get("until"):
        events = events.filter(at__lt=start_of_day(filters["until"] + datetime.timedelta(days=1)))
    return events


def export_record(event: AuditEvent) -> dict[str, str]:
    """One event as the exports give it: times in UTC ISO 8601, the console's own work as actor "console"."""
    return {
        "at": event.at.astimezone(datetime.UTC).isoformat(),
        "actor": event.actor.username if event.actor else "console",
        "action": event.action,
        "action_words": action_words(event.action),
        "target": event.target,
        "detail": event.detail,
    }


def spreadsheet_safe(value: str) -> str:
    """The value, with a leading quote if a spreadsheet would otherwise run it as a formula."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def csv_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    """The events as CSV with a header line, one line at a time (the log may be long)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    for event in events.iterator(chunk_size=2000):
        record = export_record(event)
        writer.writerow([spreadsheet_safe(record[name]) for name in EXPORT_FIELDS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def json_chunks(events: QuerySet[AuditEvent]) -> Iterator[str]:
    """The events as one JSON array of objects, an event at a time."""
    separator = "\n"
    yield "["
    for event in events.iterator(chunk_size=2000):
        yield separator + json.dumps(export_record(event))
        separator = ",\n"
    yield "\n]\n"
