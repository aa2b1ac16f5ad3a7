"""Timestamps read as relative times with the exact time on hover."""

from datetime import timedelta

from django.utils import timezone

from platforms.templatetags.console import ago, when


def test_when_shows_relative_time_with_exact_title():
    moment = timezone.now() - timedelta(hours=2, minutes=5)
    html = when(moment)
    assert html.startswith(f'<time datetime="{moment.isoformat()}" title="')
    assert ">2 hours ago</time>" in html
    assert timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") in html


def test_when_of_nothing_is_a_dash():
    assert when(None) == "—"


def test_relative_times_use_the_largest_whole_unit():
    assert [ago(s) for s in (5, 60, 125, 3600 * 49, 86400 * 8, 86400 * 400)] == [
        "just now",
        "1 minute ago",
        "2 minutes ago",
        "2 days ago",
        "1 week ago",
        "1 year ago",
    ]
