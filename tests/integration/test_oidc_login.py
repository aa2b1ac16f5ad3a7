"""End-to-end sign-in against the real Keycloak: redirects, Keycloak's own login form, callback, logout."""

import html
import re
import time
import uuid

import pytest
import requests
from django.contrib.auth.models import User

from devstack import config
from platforms.oidc_backend import SESSION_CHECKED_AT
from tests.integration import keycloak_admin
from tests.integration.http_browser import new_browser

pytestmark = pytest.mark.integration


def keycloak_form_action(page: str) -> str:
    """The action URL of Keycloak's login form on a login page."""
    form = re.search(r"<form[^>]*\bid=\"kc-form-login\"[^>]*>", page)
    assert form, "Keycloak's login form was not shown"
    return html.unescape(re.search(r'action="([^"]+)"', form.group(0)).group(1))


def sign_in(base_url: str, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    """Open the console, get sent to Keycloak, and submit its login form as a person would."""
    browser = new_browser()
    login_page = browser.get(f"{base_url}/", timeout=30)
    assert login_page.url.startswith(f"{config.KEYCLOAK_URL}/realms/{config.REALM}/")
    response = browser.post(
        keycloak_form_action(login_page.text), data={"username": username, "password": password}, timeout=30
    )
    return browser, response


def sign_out(browser: requests.Session, base_url: str) -> requests.Response:
    browser.get(f"{base_url}/", timeout=30)
    return browser.post(
        f"{base_url}/oidc/logout/",
        data={"csrfmiddlewaretoken": browser.cookies["csrftoken"]},
        headers={"Referer": f"{base_url}/"},
        timeout=30,
    )


@pytest.fixture
def console(devstack, live_server) -> str:
    return live_server.url


def test_admin_signs_in_through_keycloak_and_lands_with_admin_role(console):
    browser, landing = sign_in(console, "alice", "alice-password")
    assert landing.url == f"{console}/"
    assert 'data-testid="username">Alice Admin<' in landing.text
    assert 'data-testid="role">Admin<' in landing.text
    alice = User.objects.get(username="alice")
    assert alice.email == "alice@example.org"
    assert list(alice.groups.values_list("name", flat=True)) == ["/admins"]
    assert alice.is_staff


def test_normal_user_signs_in_without_admin_role(console):
    _, landing = sign_in(console, "bob", "bob-password")
    assert landing.url == f"{console}/"
    assert 'data-testid="role">User<' in landing.text
    assert not User.objects.get(username="bob").is_staff


def test_group_paths_from_keycloak_reach_the_user(console):
    name = f"grp-{uuid.uuid4().hex[:8]}"
    user_id = keycloak_admin.create_user(name, "pw-123456", groups=["/platform-users"])
    try:
        _, landing = sign_in(console, name, "pw-123456")
        assert landing.url == f"{console}/"
        assert list(User.objects.get(username=name).groups.values_list("name", flat=True)) == ["/platform-users"]
    finally:
        keycloak_admin.delete_user(user_id)


def test_wrong_password_stays_signed_out(console):
    browser, response = sign_in(console, "alice", "not-the-password")
    assert response.url.startswith(config.KEYCLOAK_URL)
    assert "Invalid username or password" in response.text
    assert browser.get(f"{console}/", timeout=30).url.startswith(config.KEYCLOAK_URL)
    assert not User.objects.filter(username="alice").exists()


def test_logout_ends_the_keycloak_session_and_returns_to_console(console):
    browser, _ = sign_in(console, "bob", "bob-password")
    response = sign_out(browser, console)
    assert response.url == f"{console}/signed-out/"
    assert "You are signed out" in response.text
    # Had Keycloak kept its session, this would sign straight back in without a form.
    again = browser.get(f"{console}/", timeout=30)
    assert again.url.startswith(config.KEYCLOAK_URL)
    keycloak_form_action(again.text)


def test_tampered_state_is_rejected_with_a_clear_page(console):
    browser = new_browser()
    browser.get(f"{console}/", timeout=30)  # starts a sign-in, so the session holds a real state
    response = browser.get(f"{console}/oidc/callback/", params={"state": "tampered", "code": "x"}, timeout=30)
    assert response.status_code == 400
    assert "Sign-in failed" in response.text


def test_replayed_callback_is_rejected_with_a_clear_page(console):
    browser = new_browser()
    login_page = browser.get(f"{console}/", timeout=30)
    to_callback = browser.post(
        keycloak_form_action(login_page.text),
        data={"username": "bob", "password": "bob-password"},
        allow_redirects=False,
        timeout=30,
    )
    callback_url = to_callback.headers["Location"]
    assert callback_url.startswith(f"{console}/oidc/callback/")
    assert browser.get(callback_url, timeout=30).url == f"{console}/"
    # The same code and state again, in the same session and in a stranger's session.
    assert browser.get(callback_url, timeout=30).status_code == 400
    stranger = new_browser().get(callback_url, timeout=30)
    assert stranger.status_code == 400
    assert "Sign-in failed" in stranger.text


def test_disabled_user_loses_access_at_the_next_session_check(console, settings):
    name = f"dis-{uuid.uuid4().hex[:8]}"
    user_id = keycloak_admin.create_user(name, "pw-123456")
    try:
        browser, landing = sign_in(console, name, "pw-123456")
        assert landing.url == f"{console}/"
        keycloak_admin.set_enabled(user_id, False)
        # Still within the re-check interval: the console has not asked Keycloak yet.
        assert browser.get(f"{console}/", timeout=30).url == f"{console}/"
        settings.OIDC_RECHECK_SECONDS = 0
        after = browser.get(f"{console}/", timeout=30)
        assert after.url == f"{console}/signed-out/"
        assert browser.get(f"{console}/", timeout=30).url.startswith(config.KEYCLOAK_URL)
    finally:
        keycloak_admin.delete_user(user_id)


def test_enabled_user_passes_the_session_check(console, settings):
    browser, _ = sign_in(console, "bob", "bob-password")
    settings.OIDC_RECHECK_SECONDS = 0
    before = time.time()
    assert browser.get(f"{console}/", timeout=30).url == f"{console}/"
    assert browser.get(f"{console}/", timeout=30).url == f"{console}/"
    assert SESSION_CHECKED_AT  # the middleware stamps sessions; a refused check would have signed out
    assert time.time() - before < 30
