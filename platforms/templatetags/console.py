"""Template helpers of the console: relative timestamps, and the rows of its two busiest tables."""

import html
from datetime import datetime, tzinfo

from django import template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from platforms.models import Operation, Platform

register = template.Library()


UNITS = (
    ("year", 365 * 86400),
    ("month", 30 * 86400),
    ("week", 7 * 86400),
    ("day", 86400),
    ("hour", 3600),
    ("minute", 60),
)


def ago(seconds: float) -> str:
    """ "3 hours ago": the largest whole unit. Plain arithmetic: Django's timesince goes through
    the translation machinery for every unit, a quarter of a busy page's render time."""
    for unit, size in UNITS:
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


def time_tag(value: datetime | None, now: datetime, zone: tzinfo) -> str:
    """The `<time>` element of `when`; tables pass `now` and the zone once for all their rows."""
    if not value:
        return "—"
    exact = html.escape(value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z"))
    relative = ago((now - value).total_seconds())
    return f'<time datetime="{value.isoformat()}" title="{exact}">{relative}</time>'


@register.filter
def when(value: datetime | None) -> str:
    """`<time>` saying "5 minutes ago", with the exact local time as its tooltip; "—" when empty."""
    return mark_safe(time_tag(value, timezone.now(), timezone.get_current_timezone()))


# The rows below are built in Python rather than in the templates: the template engine spends a
# few microseconds on every value it prints, and these rows print about twenty each, which made
# them most of the platform list's and platform page's time (bench/page_speed.py). Every value
# goes through html.escape, as the template engine's autoescaping would.
e = html.escape


NO_LINKS = '<span class="muted">—</span>'
NO_READING = '<span class="muted">not read yet</span>'
STATUS_LABELS = dict(Platform.Status.choices)


@register.simple_tag
def platform_rows(rows: list[dict]) -> SafeString:
    """The platform list's `<tr>`s, from the plain dicts of platforms.views.platforms.list_rows."""
    now, zone = timezone.now(), timezone.get_current_timezone()
    lines = []
    for row in rows:
        name, url, status = e(row["name"]), e(row["url"]), e(row["status"])
        cluster, version = e(row["cluster__name"]), e(row["app_version"])
        label = e(STATUS_LABELS.get(row["status"], row["status"]))
        links = "".join(service_link(link) for link in row["links"]) or NO_LINKS
        creator = e(row["created_by__username"] or "—")
        created = time_tag(row["created_at"], now, zone)
        used = usage_html(
            row["usage__active_users"], row["usage__servers"], row["usage__read_at"], row["usage__error"], now, zone
        )
        lines.append(
            f'<tr><td><a href="{url}">{name}</a></td><td>{cluster}</td><td>{version}</td>'
            f'<td><span class="status status-{status}" data-testid="status">{label}</span></td>'
            f'<td>{links}</td><td data-testid="usage">{used}</td><td>{creator}, {created}</td></tr>'
        )
    return mark_safe("\n".join(lines))


def usage_html(
    active_users: int | None,
    servers: int | None,
    read_at: datetime | None,
    error: str | None,
    now: datetime,
    zone: tzinfo,
) -> str:
    """ "3 active users, 2 servers (read 2 minutes ago)", "unknown: <why>", or "not read yet".

    The worker's stored reading (platforms.usage): a page never asks a hub.
    """
    if error:
        return f'<span class="muted">unknown: {e(error)}</span>'
    if read_at is None or active_users is None or servers is None:
        return NO_READING
    users = f"{active_users} active user{'' if active_users == 1 else 's'}"
    running = f"{servers} server{'' if servers == 1 else 's'}"
    return f'{users}, {running} <span class="muted">(read {time_tag(read_at, now, zone)})</span>'


@register.simple_tag
def platform_usage(platform: Platform) -> SafeString:
    """The platform page's usage line, from the fields platforms.views.platforms.platform_detail annotates."""
    reading = (platform.usage_active_users, platform.usage_servers, platform.usage_read_at, platform.usage_error)
    return mark_safe(usage_html(*reading, timezone.now(), timezone.get_current_timezone()))


def service_link(link: dict) -> str:
    """One service's click-through link; a link whose service is not ready yet says so."""
    waiting = "" if link["ready"] else " waiting"
    note = "" if link["ready"] else " (not ready)"
    return (
        f'<a class="service-link{waiting}" href="{e(link["url"])}" data-testid="service-{e(link["name"])}">'
        f"{e(link['label'])}{note}</a>"
    )


KIND_LABELS = dict(Operation.Kind.choices)
STATE_LABELS = dict(Operation.State.choices)


@register.simple_tag
def operation_rows(operations: list) -> SafeString:
    """The operation log's `<tr>`s: one per operation, and its output or error below it.

    The operations carry `actor_name` (annotated by platforms.views.platforms.live_context).
    """
    now, zone = timezone.now(), timezone.get_current_timezone()
    lines = []
    for op in operations:
        actor = op.actor_name or "console"
        kind, state = op.reason or KIND_LABELS.get(op.kind, op.kind), STATE_LABELS.get(op.state, op.state)
        badge = f'<span class="status status-{e(op.state)}">{e(state)}</span>'
        lines.append(
            f"<tr><td>{e(kind)}</td><td>{badge}</td><td>{e(actor)}</td>"
            f"<td>{time_tag(op.requested_at, now, zone)}</td><td>{time_tag(op.finished_at, now, zone)}</td>"
            f"<td>{op.helm_revision or '—'}</td></tr>"
        )
        if op.error or op.output:
            error = " error" if op.error else ""
            lines.append(f'<tr><td colspan="6"><pre class="log{error}">{e(op.error or op.output)}</pre></td></tr>')
    return mark_safe("\n".join(lines))
