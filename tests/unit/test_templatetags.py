"""Timestamps read as relative times with the exact time on hover."""

from datetime import timedelta

import pytest
from django.core.paginator import Paginator
from django.db.models import F
from django.utils import timezone

from platforms.models import Operation
from platforms.templatetags.console import ago, operation_rows, pager, platform_rows, when


def test_when_shows_relative_time_with_exact_title():
    moment = timezone.now() - timedelta(hours=2, minutes=5)
    html = when(moment)
    local = timezone.localtime(moment)
    assert html.startswith(f'<time datetime="{local.isoformat(timespec="seconds")}" title="')
    assert f'title="{local:%Y-%m-%d %H:%M:%S %Z}">2 hours ago</time>' in html


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


def platform_row(**overrides) -> dict:
    row = {
        "name": "alpha",
        "url": "/platforms/alpha/",
        "status": "deployed",
        "cluster__name": "local",
        "app_version": "0.1.0",
        "created_by__username": "alice",
        "created_at": timezone.now() - timedelta(minutes=3),
        "links": [("binderhub", True)],
        "usage__active_users": None,
        "usage__servers": None,
        "usage__read_at": None,
        "usage__error": None,
        "expires_at": None,
    }
    return {**row, **overrides}


def test_platform_rows_escape_every_value_as_the_template_engine_would():
    hostile = '<script>alert("x")</script>'
    row = platform_row(
        url='/x"onclick="y/',
        cluster__name=hostile,
        created_by__username=hostile,
        links=[(hostile, False)],
        usage__error=hostile,
    )
    html = platform_rows([row])
    assert "<script>" not in html
    # cluster, creator, usage, and the link's address, test id and label
    assert html.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") == 6
    assert 'href="/x&quot;onclick=&quot;y/"' in html
    assert 'class="service-link waiting" href="/x&quot;onclick=&quot;y/services/&lt;script&gt;' in html
    assert "(not ready)</a>" in html


def test_platform_rows_show_status_links_and_relative_creation_time():
    html = platform_rows([platform_row(), platform_row(name="beta", links=[], created_by__username=None)])
    assert html.count("<tr>") == 2
    assert '<a href="/platforms/alpha/">alpha</a>' in html
    assert '<span class="status status-deployed" data-testid="status">Deployed</span>' in html
    link = '<a class="service-link" href="/platforms/alpha/services/binderhub/" data-testid="service-binderhub">'
    assert f"{link}BinderHub</a>" in html
    assert "alice, <time" in html and ">3 minutes ago</time>" in html
    assert '<span class="muted">—</span>' in html and "<td>—, <time" in html


@pytest.mark.django_db
def test_operation_rows_escape_output_and_name_the_console_when_no_one_acted(admin_user, platform):
    Operation.objects.create(platform=platform, kind="install", state="failed", error="bad & <worse>")
    Operation.objects.create(platform=platform, kind="upgrade", state="succeeded", actor=admin_user, output="<b>ok</b>",
                             helm_revision=2, finished_at=timezone.now())  # fmt: skip
    html = operation_rows(list(platform.operations.annotate(actor_name=F("actor__username"))))
    assert '<pre class="log error">bad &amp; &lt;worse&gt;</pre>' in html
    assert '<pre class="log">&lt;b&gt;ok&lt;/b&gt;</pre>' in html
    assert '<td>Install</td><td><span class="status status-failed">Failed</span></td><td>console</td>' in html
    succeeded = '<span class="status status-succeeded">Succeeded</span>'
    assert f"<td>Upgrade</td><td>{succeeded}</td><td>{admin_user.username}</td>" in html
    assert "<td>2</td></tr>" in html and html.count("<td>—</td>") == 2


def test_an_operation_the_console_requested_itself_is_named_for_what_it_does(platform):
    Operation.objects.create(
        platform=platform, kind="upgrade", state="queued", reason="Set the service addresses Zenith reported"
    )
    html = operation_rows(list(platform.operations.annotate(actor_name=F("actor__username"))))
    assert "<td>Set the service addresses Zenith reported</td>" in html
    assert "<td>Upgrade</td>" not in html


def test_the_pager_links_the_neighbouring_pages_and_keeps_the_other_parameters():
    pages = Paginator(range(60), 25)
    assert pager(Paginator(range(25), 25).page(1), "platforms") == ""
    first = pager(pages.page(1), "platforms")
    assert "Previous" not in first and '<a href="?page=2" rel="next">' in first
    assert "<span>Page 1 of 3 (60 platforms)</span>" in first and 'aria-label="Pages of platforms"' in first
    middle = pager(pages.page(2), "events", "person=alice&platform=<x>")
    assert '<a href="?person=alice&amp;platform=&lt;x&gt;&amp;page=1" rel="prev">' in middle
    assert '<a href="?person=alice&amp;platform=&lt;x&gt;&amp;page=3" rel="next">' in middle
    assert "Next" not in pager(pages.page(3), "events")
