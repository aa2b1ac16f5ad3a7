"""Template helpers of the console: timestamps shown relative, with the exact time on hover."""

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def when(value: datetime | None) -> str:
    """`<time>` saying "5 minutes ago", with the exact local time as its tooltip; "—" when empty."""
    if not value:
        return "—"
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{} ago</time>',
        value.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        timesince(value).split(",")[0],
    )
