"""On a phone (390 px wide) no page scrolls sideways: the header wraps, wide tables scroll in their own box."""

import pytest
from django.conf import settings
from django.test import Client

from platforms.models import AuditEvent, Operation, Platform

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
# Long, unbroken text of the kinds people and clusters produce: a name at the console's limit
# (PLATFORM_NAME_MAX_LENGTH, which PostgreSQL enforces), an address in an error message.
LONG_NAME = "a-platform-name-as-long-as-the-form-lets"
LONG_ERROR = "helm: could not reach https://charts.example.org/binderadmin/index.yaml?because-of-a-very-long-query"


@pytest.fixture
def keycloak_directory(monkeypatch):
    """The in-memory Keycloak directory: the Access and Users pages need no Keycloak here."""
    from platforms.services import keycloak
    from tests.fakes import FakeDirectory

    fake = FakeDirectory()
    fake.add_user("alice", ("/admins",), first_name="Alice", last_name="Admin")
    monkeypatch.setattr(keycloak, "get_directory", lambda: fake)
    return fake


@pytest.fixture
def busy_console(cluster, admin_user):
    """A platform with a long name, a failed operation with a long message, and an audit trail."""
    platform = Platform.objects.create(
        name=LONG_NAME,
        cluster=cluster,
        app_version="0.1.0",
        status=Platform.Status.FAILED,
        status_message=LONG_ERROR,
        created_by=admin_user,
        updated_by=admin_user,
    )
    Operation.objects.create(
        platform=platform, kind=Operation.Kind.INSTALL, state=Operation.State.FAILED, actor=admin_user, error=LONG_ERROR
    )
    AuditEvent.objects.create(actor=admin_user, action="platform.launch", target=LONG_NAME, detail=LONG_ERROR)
    return platform


def signed_in_phone(new_page, base_url: str, user):
    """A page 390 px wide, signed in as user (a console session with no Keycloak session to re-check)."""
    client = Client()
    client.force_login(user)
    page = new_page()
    page.set_viewport_size(PHONE)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": base_url}])
    return page


def overflow(page) -> dict:
    """How far the page is wider than the window, and which header controls stick out of it."""
    return page.evaluate(
        """() => ({
            extra: document.documentElement.scrollWidth - window.innerWidth,
            header: [...document.querySelectorAll('.topbar a, .topbar button, .topbar span')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth)
                .map(e => e.textContent.trim()),
        })"""
    )


def test_no_page_scrolls_sideways_on_a_phone(
    live_server, new_page, shot, admin_user, busy_console, keycloak_directory, fake_kube, stub_app_versions
):
    base, name, cluster = live_server.url, busy_console.name, busy_console.cluster.name
    page = signed_in_phone(new_page, base, admin_user)
    paths = [
        "/",
        "/launch/",
        f"/platforms/{name}/",
        f"/platforms/{name}/edit/",
        f"/platforms/{name}/delete/",
        f"/platforms/{name}/users/",
        "/access/",
        "/audit/",
        "/clusters/",
        "/clusters/register/",
        f"/clusters/{cluster}/",
        f"/clusters/{cluster}/edit/",
        "/signed-out/",
        "/sign-in-failed/",
    ]
    found = {}
    for path in paths:
        response = page.goto(f"{base}{path}")
        assert response.status == (400 if path == "/sign-in-failed/" else 200), path
        page.wait_for_load_state("networkidle")
        shot(page, path.strip("/").replace("/", "-").replace(name, "platform") or "platforms")
        found[path] = overflow(page)
    assert {path: seen for path, seen in found.items() if seen["extra"] > 0 or seen["header"]} == {}


def test_a_wide_table_scrolls_inside_its_own_box_on_a_phone(live_server, new_page, admin_user, busy_console):
    page = signed_in_phone(new_page, live_server.url, admin_user)
    page.goto(f"{live_server.url}/")
    table = page.locator("[data-testid=platforms]")
    box = table.evaluate("t => ({scroll: t.scrollWidth, client: t.clientWidth, style: getComputedStyle(t).overflowX})")
    assert box["client"] <= PHONE["width"] < box["scroll"]  # wider than the phone, yet inside it
    assert box["style"] == "auto"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
