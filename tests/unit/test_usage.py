"""Hub usage: the worker's refresh pass (with a fake hub reader), and what the pages show of its readings."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from platforms import tasks, usage
from platforms.models import Platform, PlatformUsage, ServiceLink
from platforms.services import jupyterhub
from platforms.services.errors import NoAnswer, Unavailable
from platforms.services.jupyterhub import HubUsage
from platforms.values import USAGE_SCOPES, USAGE_SERVICE, build_values
from tests.fakes import FakeHubReader
from tests.unit.test_values_schema import spec

HUB = "https://jupyterhub-demo.example.org"


@pytest.fixture
def hubs(monkeypatch) -> FakeHubReader:
    fake = FakeHubReader()
    monkeypatch.setattr(jupyterhub, "get_hub_reader", lambda: fake)
    return fake


def deployed(platform: Platform, link: str = HUB, token: str = "usage-token") -> Platform:
    platform.status = Platform.Status.DEPLOYED
    if token:
        platform.secrets = {**platform.secrets, usage.TOKEN_KEY: token}
    platform.save()
    if link:
        ServiceLink.objects.create(platform=platform, name="jupyterhub", url=link, ready=True)
    return platform


def reading(platform: Platform) -> PlatformUsage:
    return PlatformUsage.objects.get(platform=platform)


# --- The values: the hub gets the console's token, and a role that may only read ------------------


def test_the_hub_gets_the_usage_service_with_its_token_and_a_read_only_role():
    hub = build_values(spec(hub_usage_token="t0ken"))["binderhub"]["jupyterhub"]["hub"]
    assert hub["services"][USAGE_SERVICE] == {"apiToken": "t0ken"}
    assert hub["loadRoles"][USAGE_SERVICE] == {"scopes": ["list:users", "read:servers"], "services": [USAGE_SERVICE]}
    assert not any(scope.startswith(("admin", "users", "servers", "access")) for scope in USAGE_SCOPES)
    assert hub["loadRoles"]["user"] == {"scopes": ["self", "access:services"]}


def test_without_a_token_the_hub_gets_no_usage_service():
    hub = build_values(spec(hub_usage_token=""))["binderhub"]["jupyterhub"]["hub"]
    assert USAGE_SERVICE not in hub.get("services", {})
    assert USAGE_SERVICE not in hub["loadRoles"]


def test_deploys_generate_the_usage_token_once(platform):
    from platforms import deploy

    first = deploy.values_input(platform).hub_usage_token
    assert len(first) >= 32
    assert deploy.values_input(Platform.objects.get(pk=platform.pk)).hub_usage_token == first
    assert Platform.objects.get(pk=platform.pk).secrets[usage.TOKEN_KEY] == first


# --- The refresh pass ------------------------------------------------------------------------------


def test_refresh_stores_what_the_hub_reports_asked_with_the_platforms_token(platform, hubs):
    deployed(platform)
    hubs.answers[HUB] = HubUsage(active_users=3, servers=5)
    assert usage.refresh() == 1
    stored = reading(platform)
    assert (stored.active_users, stored.servers, stored.error) == (3, 5, "")
    assert stored.read_at == stored.checked_at and stored.read_at is not None
    assert hubs.calls == [(HUB, "usage-token")]


def test_an_unreachable_hub_is_unknown_and_keeps_the_last_numbers(platform, hubs):
    deployed(platform)
    hubs.answers[HUB] = HubUsage(active_users=2, servers=2)
    usage.refresh()
    read_at = reading(platform).read_at
    PlatformUsage.objects.update(checked_at=timezone.now() - timedelta(hours=1))
    hubs.answers[HUB] = NoAnswer("hub not reachable: no answer within 5 s")
    usage.refresh()
    stored = reading(platform)
    assert stored.error == "hub not reachable: no answer within 5 s"
    assert (stored.active_users, stored.servers, stored.read_at) == (2, 2, read_at)
    assert stored.checked_at > read_at


def test_a_reading_is_taken_again_only_once_it_is_due(platform, hubs, settings):
    deployed(platform)
    hubs.answers[HUB] = HubUsage(active_users=1, servers=1)
    usage.refresh()
    assert usage.refresh() == 0
    assert len(hubs.calls) == 1
    PlatformUsage.objects.update(checked_at=timezone.now() - timedelta(seconds=settings.USAGE_REFRESH_SECONDS + 1))
    assert usage.refresh() == 1
    assert len(hubs.calls) == 2


@pytest.mark.parametrize(
    ("link", "token", "why"),
    [
        ("", "usage-token", "no JupyterHub address yet"),
        ("http://10.0.0.7", "usage-token", "no JupyterHub address yet"),  # never a recorded shape: not asked
        (HUB, "", "the hub has no usage token yet; the next upgrade gives it one"),
    ],
)
def test_a_platform_whose_hub_cannot_be_asked_says_why_without_a_call(platform, hubs, link, token, why):
    deployed(platform, link=link, token=token)
    usage.refresh()
    assert reading(platform).error == why
    assert hubs.calls == []


def test_only_deployed_platforms_are_read(platform, hubs):
    deployed(platform)
    Platform.objects.filter(pk=platform.pk).update(status=Platform.Status.UPGRADING)
    assert usage.refresh() == 0
    assert hubs.calls == []


def test_one_failing_hub_does_not_stop_the_others(cluster, admin_user, hubs):
    for name in ("aa", "bb", "cc"):
        deployed(
            Platform.objects.create(name=name, cluster=cluster, app_version="0.1.0"), f"https://jupyterhub-{name}.x"
        )
    hubs.answers = {
        "https://jupyterhub-aa.x": HubUsage(1, 1),
        "https://jupyterhub-bb.x": RuntimeError("a bug in the reader"),
        "https://jupyterhub-cc.x": Unavailable("the hub answered HTTP 502"),
    }
    assert usage.refresh() == 3
    errors = dict(PlatformUsage.objects.values_list("platform__name", "error"))
    assert errors == {"aa": "", "bb": usage.GENERIC_FAILURE, "cc": "the hub answered HTTP 502"}


def test_a_pass_out_of_time_stores_nothing_for_the_hubs_it_did_not_ask(platform, hubs, monkeypatch):
    deployed(platform)
    monkeypatch.setattr(usage, "PASS_SECONDS", -1)
    assert usage.refresh() == 0
    assert hubs.calls == [] and not PlatformUsage.objects.exists()


def test_the_task_runs_the_pass(platform, hubs):
    deployed(platform)
    hubs.answers[HUB] = HubUsage(4, 6)
    tasks.refresh_usage()
    assert reading(platform).servers == 6


def test_the_pass_is_scheduled_every_minute(db):
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="binderadmin-usage")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("platforms.tasks.refresh_usage", "I", 1)


# --- The pages: the stored reading, never a hub ---------------------------------------------------


class NoHubDuringRequests:
    def read(self, hub_url, token):
        raise AssertionError("a page asked a hub")


@pytest.fixture
def no_hub_calls(monkeypatch):
    monkeypatch.setattr(jupyterhub, "get_hub_reader", NoHubDuringRequests)


def store(platform: Platform, **fields) -> None:
    PlatformUsage.objects.update_or_create(platform=platform, defaults={"checked_at": timezone.now(), **fields})


def page_texts(client: Client) -> tuple[str, str]:
    listing = client.get(reverse("platform_list")).content.decode()
    detail = client.get(reverse("platform_detail", args=["demo"])).content.decode()
    return listing, detail


def test_pages_show_the_counts_and_how_old_they_are(admin_client, platform, no_hub_calls):
    store(platform, active_users=3, servers=2, read_at=timezone.now() - timedelta(minutes=2))
    for body in page_texts(admin_client):
        assert "3 active users, 2 servers" in body
        assert ">2 minutes ago</time>)" in body and "(read <time" in body


def test_pages_say_one_user_and_one_server_in_the_singular(member_client, platform, no_hub_calls):
    store(platform, active_users=1, servers=1, read_at=timezone.now())
    for body in page_texts(member_client):
        assert "1 active user, 1 server <" in body


def test_pages_say_unknown_and_why_when_the_hub_was_not_reachable(admin_client, platform, no_hub_calls):
    store(platform, active_users=3, servers=2, read_at=timezone.now(), error="hub not reachable: no answer within 5 s")
    for body in page_texts(admin_client):
        assert "unknown: hub not reachable: no answer within 5 s" in body
        assert "3 active users" not in body


def test_pages_say_not_read_yet_before_the_first_reading(admin_client, platform, no_hub_calls):
    for body in page_texts(admin_client):
        assert "not read yet" in body


def test_a_hostile_error_text_is_escaped(admin_client, platform, no_hub_calls):
    store(platform, error='<script>alert("x")</script>')
    for body in page_texts(admin_client):
        assert "<script>alert" not in body and "&lt;script&gt;alert" in body


def test_outsiders_see_no_usage_of_a_platform(outsider_client, platform, no_hub_calls):
    store(platform, active_users=3, servers=2, read_at=timezone.now())
    assert outsider_client.get(reverse("platform_detail", args=["demo"])).status_code == 404
    assert "active users" not in outsider_client.get(reverse("platform_list")).content.decode()


def test_the_usage_column_adds_no_query_to_the_list(admin_client, cluster, admin_user, no_hub_calls):
    platforms = Platform.objects.bulk_create(
        Platform(name=f"p{i:03d}", cluster=cluster, app_version="0.1.0", created_by=admin_user) for i in range(30)
    )
    with CaptureQueriesContext(connection) as before:
        admin_client.get(reverse("platform_list"))
    PlatformUsage.objects.bulk_create(
        PlatformUsage(platform=p, active_users=i, servers=i, read_at=timezone.now()) for i, p in enumerate(platforms)
    )
    with CaptureQueriesContext(connection) as after:
        body = admin_client.get(reverse("platform_list")).content.decode()
    assert len(after) == len(before)
    assert body.count('data-testid="usage"') == 25 and "24 active users, 24 servers" in body
