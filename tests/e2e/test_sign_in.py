"""A person signs in through Keycloak's own page in a real browser, as admin and as user, and out."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/")
    page.wait_for_selector("#kc-form-login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#kc-login")
    page.wait_for_url(f"{base_url}/")


def test_admin_and_user_sign_in_and_out_in_a_browser(devstack, live_server, page, shot):
    base = live_server.url
    page.goto(f"{base}/")
    page.wait_for_selector("#kc-form-login")
    shot(page, "keycloak-login-page")

    sign_in(page, base, "alice", "alice-password")
    assert page.inner_text("[data-testid=username]") == "Alice Admin"
    assert page.inner_text("[data-testid=role]") == "Admin"
    shot(page, "admin-signed-in")

    page.click("text=Sign out")
    page.wait_for_url(f"{base}/signed-out/")
    assert "You are signed out" in page.inner_text("h1")
    shot(page, "signed-out")

    sign_in(page, base, "bob", "bob-password")  # Keycloak asks again: its session ended too
    assert page.inner_text("[data-testid=role]") == "User"
    assert "No BinderHub platforms are shared with you yet" in page.inner_text("[data-testid=empty]")
    shot(page, "user-signed-in")


def test_wrong_password_stays_on_keycloaks_page(devstack, live_server, page, shot):
    page.goto(f"{live_server.url}/")
    page.fill("#username", "alice")
    page.fill("#password", "wrong")
    page.click("#kc-login")
    page.wait_for_selector("#input-error, .kc-feedback-text, [id*=error]")
    assert "Invalid username or password" in page.content()
    shot(page, "wrong-password")
