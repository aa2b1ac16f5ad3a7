"""Template helpers of the console: relative timestamps, and the rows of its two busiest tables."""

from datetime import date, datetime, timedelta, tzinfo
from html import escape

from django import template
from django.core.paginator import Page
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from platforms import expiry
from platforms.models import Operation, Platform
from platforms.values import service_label

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


def fragment(template: str, *values) -> SafeString:
    """format_html's rule, without its cost: each value escaped unless it is HTML already.

    django.utils.html.format_html escapes each value through the lazy-string machinery, which made the
    platform list measurably slower (bench/request_cost.py).
    """
    return SafeString(template.format(*[v if hasattr(v, "__html__") else escape(str(v)) for v in values]))


def until(seconds: float) -> str:
    """ "in 3 days": the largest whole unit, as `ago` says it of the past."""
    for unit, size in UNITS:
        if seconds >= size:
            count = int(seconds // size)
            return f"in {count} {unit}{'' if count == 1 else 's'}"
    return "in less than a minute"


NO_TIME = mark_safe("—")
# The values of TIME and EXPIRY are made here from datetimes (isoformat, the zone's abbreviation, the
# words of `ago` and `until`): digits, letters and signs, nothing to escape. So they skip fragment(),
# whose escaping was much of their cost, three times in every row of the platform list.
TIME = '<time datetime="{}" title="{}">{}</time>'


def local_moment(value: datetime, zone: tzinfo) -> tuple[str, str]:
    """`value` in `zone` for machines (ISO 8601 to the second, with its offset) and for people.

    Both come from one isoformat(): strftime with %Z cost more than the rest of a `<time>` element.
    """
    local = value.astimezone(zone)
    machine = local.isoformat(timespec="seconds")
    return machine, f"{machine[:10]} {machine[11:19]} {local.tzname()}"


def time_tag(value: datetime | None, now: datetime, zone: tzinfo) -> SafeString:
    """The `<time>` element of `when`; tables pass `now` and the zone once for all their rows."""
    if not value:
        return NO_TIME
    machine, exact = local_moment(value, zone)
    return SafeString(TIME.format(machine, exact, ago((now - value).total_seconds())))


@register.filter
def when(value: datetime | None) -> SafeString:
    """`<time>` saying "5 minutes ago", with the exact local time as its tooltip; "—" when empty."""
    return time_tag(value, timezone.now(), timezone.get_current_timezone())


# The rows below are built in Python rather than in the templates: the template engine spends a
# few microseconds on every value it prints, and these rows print about twenty each, which made
# them most of the platform list's and platform page's time (bench/request_cost.py). Each fragment
# has one format string here, and fragment() escapes every value as the template engine would.
NO_LINKS = mark_safe('<span class="muted">—</span>')
NO_READING = mark_safe('<span class="muted">not read yet</span>')
PLATFORM_ROW = (
    '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td>'
    '<td><span class="status status-{}" data-testid="status">{}</span></td>'
    '<td>{}</td><td data-testid="usage">{}</td><td data-testid="expiry">{}</td><td>{}, {}</td></tr>'
)
STATUS_LABELS = dict(Platform.Status.choices)


@register.simple_tag
def platform_rows(rows: list[dict]) -> SafeString:
    """The platform list's `<tr>`s, from the plain dicts of platforms.views.platforms.list_rows."""
    now, zone = timezone.now(), timezone.get_current_timezone()
    lines = []
    for row in rows:
        status = row["status"]
        # SafeString, not mark_safe: each link is a fragment already, and mark_safe's checks cost more than that.
        links = SafeString("".join([service_link(row["url"], *link) for link in row["links"]])) or NO_LINKS
        used = usage_html(
            row["usage__active_users"], row["usage__servers"], row["usage__read_at"], row["usage__error"], now, zone
        )
        lines.append(
            fragment(
                PLATFORM_ROW,
                row["url"],
                row["name"],
                row["cluster__name"],
                row["app_version"],
                status,
                STATUS_LABELS.get(status, status),
                links,
                used,
                expiry_html(row["expires_at"], status, now, zone),
                row["created_by__username"] or "—",
                time_tag(row["created_at"], now, zone),
            )
        )
    return mark_safe("\n".join(lines))


def usage_html(
    active_users: int | None,
    servers: int | None,
    read_at: datetime | None,
    error: str | None,
    now: datetime,
    zone: tzinfo,
) -> SafeString:
    """ "3 active users, 2 servers (read 2 minutes ago)", "unknown: <why>", or "not read yet".

    The worker's stored reading (platforms.usage): a page never asks a hub.
    """
    if error:
        return fragment('<span class="muted">unknown: {}</span>', error)
    if read_at is None or active_users is None or servers is None:
        return NO_READING
    # Two whole numbers and a TIME: nothing to escape.
    users_plural, servers_plural = "" if active_users == 1 else "s", "" if servers == 1 else "s"
    return SafeString(
        USAGE.format(int(active_users), users_plural, int(servers), servers_plural, time_tag(read_at, now, zone))
    )


USAGE = '{} active user{}, {} server{} <span class="muted">(read {})</span>'


@register.simple_tag
def platform_usage(platform: Platform) -> SafeString:
    """The platform page's usage line, from the fields platforms.views.platforms.platform_detail annotates."""
    reading = (platform.usage_active_users, platform.usage_servers, platform.usage_read_at, platform.usage_error)
    return usage_html(*reading, timezone.now(), timezone.get_current_timezone())


NO_EXPIRY = mark_safe('<span class="muted">—</span>')
EXPIRY = '<time class="expiry" datetime="{}" title="{}">{}</time>'
# The last days before an expiry are marked by more than their colour: a sign, and the words themselves.
EXPIRY_SOON = '<time class="expiry expiry-soon" datetime="{}" title="{}"><span aria-hidden="true">⚠ </span>{}</time>'


def expiry_html(expires_at: datetime | None, status: str, now: datetime, zone: tzinfo) -> SafeString:
    """ "expires in 3 days" (marked in its last WARNING_DAYS), "expired, being removed", or "—" for none.

    Its tooltip says when exactly (expiry_moment).
    """
    if expires_at is None:
        return NO_EXPIRY
    machine, exact = expiry_moment(expires_at, zone)
    left = (expires_at - now).total_seconds()
    if left <= 0:
        # A failed platform is not being removed: its status says why (a failed removal waits for a person).
        words = "expired" if status == Platform.Status.FAILED else "expired, being removed"
        return SafeString(EXPIRY_SOON.format(machine, exact, words))
    shown = EXPIRY_SOON if left < expiry.WARNING_DAYS * 86400 else EXPIRY
    return SafeString(shown.format(machine, exact, f"expires {until(left)}"))


def expiry_moment(expires_at: datetime, zone: tzinfo) -> tuple[str, str]:
    """`expires_at` for machines (as local_moment) and for people: "end of 2027-01-31, UTC" for a day
    the forms chose (they store the next midnight), else the time to the minute."""
    machine, exact = local_moment(expires_at, zone)
    if machine[11:19] == "00:00:00" and not expires_at.microsecond:
        day_before = date.fromisoformat(machine[:10]) - timedelta(days=1)
        return machine, f"end of {day_before}, {exact[20:]}"
    return machine, f"{exact[:16]} {exact[20:]}"


@register.simple_tag
def platform_expiry(platform: Platform) -> SafeString:
    """The platform page's expiry: how long is left, and the exact moment beside it."""
    if platform.expires_at is None:
        return NO_EXPIRY
    zone = timezone.get_current_timezone()
    shown = expiry_html(platform.expires_at, platform.status, timezone.now(), zone)
    return fragment('{} <span class="muted">({})</span>', shown, expiry_moment(platform.expires_at, zone)[1])


def service_link(platform_url: str, name: str, ready: bool) -> SafeString:
    """One service's click-through link on the platform list; a link whose service is not ready yet says so."""
    return fragment(SERVICE_LINK if ready else SERVICE_LINK_WAITING, platform_url, name, name, service_label(name))


SERVICE_LINK = '<a class="service-link" href="{}services/{}/" data-testid="service-{}">{}</a>'
SERVICE_LINK_WAITING = (
    '<a class="service-link waiting" href="{}services/{}/" data-testid="service-{}">{} (not ready)</a>'
)


PAGER = '<nav class="pager" aria-label="Pages of {}" data-testid="pager">{}<span>Page {} of {} ({} {})</span>{}</nav>'
PREVIOUS_PAGE = '<a href="{}{}" rel="prev">← Previous</a>'
NEXT_PAGE = '<a href="{}{}" rel="next">Next →</a>'


@register.simple_tag
def pager(page: Page, things: str, query: str = "") -> SafeString:
    """The links between the pages of a table ("Page 2 of 40 (1000 platforms)"); nothing on a single page.

    `query` is the page's other parameters, already urlencoded, which every link keeps. Built here, not in a
    template, because the template engine's lookups on a Page cost the platform list as much as a few rows.
    """
    if page.paginator.num_pages < 2:
        return SafeString("")
    link_start = f"?{query}&page=" if query else "?page="
    previous = fragment(PREVIOUS_PAGE, link_start, page.number - 1) if page.number > 1 else ""
    following = fragment(NEXT_PAGE, link_start, page.number + 1) if page.number < page.paginator.num_pages else ""
    return fragment(
        PAGER, things, previous, page.number, page.paginator.num_pages, page.paginator.count, things, following
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
        lines.append(
            fragment(
                OPERATION_ROW,
                op.reason or KIND_LABELS.get(op.kind, op.kind),
                op.state,
                STATE_LABELS.get(op.state, op.state),
                op.actor_name or "console",
                time_tag(op.requested_at, now, zone),
                time_tag(op.finished_at, now, zone),
                op.helm_revision or "—",
            )
        )
        if op.error or op.output:
            lines.append(fragment(OPERATION_LOG, " error" if op.error else "", op.error or op.output))
    return mark_safe("\n".join(lines))


OPERATION_ROW = (
    '<tr><td>{}</td><td><span class="status status-{}">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>'
)
OPERATION_LOG = '<tr><td colspan="6"><pre class="log{}">{}</pre></td></tr>'
