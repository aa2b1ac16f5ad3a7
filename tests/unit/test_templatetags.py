"""Timestamps read as relative times with the exact time on hover."""

from datetime import timedelta

from django.utils import timezone

from platforms.templatetags.console import when


def test_when_shows_relative_time_with_exact_title():
    moment = timezone.now() - timedelta(hours=2, minutes=5)
    html = when(moment)
    assert html.startswith(f'<time datetime="{moment.isoformat()}" title="')
    assert ">2\xa0hours ago</time>" in html
    assert timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") in html


def test_when_of_nothing_is_a_dash():
    assert when(None) == "—"
