"""Signed-in sessions are re-checked against Keycloak and end when Keycloak refuses them."""

import time

import pytest
from django.urls import reverse

from platforms import middleware
from platforms.oidc_backend import SESSION_CHECKED_AT, SESSION_REFRESH_TOKEN, SESSION_SIGNED_OUT_REASON
from platforms.services.errors import NotFound, Unavailable
from platforms.services.types import TokenSet


class FakeChecker:
    def __init__(self, outcome):
        self.outcome = outcome
        self.calls: list[str] = []

    def refresh(self, refresh_token: str) -> TokenSet:
        self.calls.append(refresh_token)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.fixture
def oidc_session(member_client):
    """Make the test client's session look like one made by the OIDC backend, due for a check."""
    session = member_client.session
    session[SESSION_REFRESH_TOKEN] = "refresh-1"
    session[SESSION_CHECKED_AT] = time.time() - 3600
    session.save()
    return member_client


def use_checker(monkeypatch, outcome) -> FakeChecker:
    checker = FakeChecker(outcome)
    monkeypatch.setattr(middleware, "get_session_checker", lambda: checker)
    return checker


def test_session_refused_by_keycloak_is_signed_out(oidc_session, monkeypatch):
    checker = use_checker(monkeypatch, NotFound("User disabled"))
    response = oidc_session.get(reverse("platform_list"))
    assert checker.calls == ["refresh-1"]
    assert response.status_code == 302
    assert response["Location"] == reverse("logged_out")
    assert oidc_session.get(reverse("platform_list")).status_code == 302


def test_disabled_user_is_told_why_once(oidc_session, monkeypatch):
    use_checker(monkeypatch, NotFound("Keycloak ended this session (User disabled)."))
    page = oidc_session.get(reverse("platform_list"), follow=True)
    assert page.request["PATH_INFO"] == reverse("logged_out")
    assert "your account is disabled" in page.content.decode()
    again = oidc_session.get(reverse("logged_out")).content.decode()
    assert "disabled" not in again
    assert "Your console and Keycloak sessions have ended." in again


def test_ended_keycloak_session_is_told_apart_from_a_disabled_account(oidc_session, monkeypatch):
    use_checker(monkeypatch, NotFound("Keycloak ended this session (Session not active)."))
    page = oidc_session.get(reverse("platform_list"), headers={"HX-Request": "true"})
    text = oidc_session.get(page["HX-Redirect"]).content.decode()
    assert "Keycloak no longer accepts your session" in text
    assert "Session not active" not in text  # a fixed sentence per reason, never Keycloak's words


def test_signed_out_page_shows_only_known_reasons(client, db):
    session = client.session
    session[SESSION_SIGNED_OUT_REASON] = "<script>alert(1)</script>"
    session.save()
    text = client.get(reverse("logged_out"), {"reason": "disabled"}).content.decode()
    assert "<script>alert(1)" not in text
    assert "disabled" not in text
    assert "Your console and Keycloak sessions have ended." in text


def test_htmx_request_of_a_refused_session_gets_client_redirect(oidc_session, monkeypatch):
    use_checker(monkeypatch, NotFound("Session not active"))
    response = oidc_session.get(reverse("platform_list"), headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == reverse("logged_out")


def test_session_accepted_by_keycloak_carries_on_with_new_token(oidc_session, monkeypatch):
    use_checker(monkeypatch, TokenSet(access_token="a", refresh_token="refresh-2", id_token="id-2"))
    assert oidc_session.get(reverse("platform_list")).status_code == 200
    assert oidc_session.session[SESSION_REFRESH_TOKEN] == "refresh-2"
    assert oidc_session.session["oidc_id_token"] == "id-2"


def test_keycloak_outage_does_not_sign_everyone_out_and_is_asked_again_later(oidc_session, monkeypatch):
    checker = use_checker(monkeypatch, Unavailable("connection refused"))
    assert oidc_session.get(reverse("platform_list")).status_code == 200
    assert oidc_session.get(reverse("platform_list")).status_code == 200
    # Not asked again at once: every ask of a silent Keycloak holds a request for a whole timeout.
    assert len(checker.calls) == 1
    session = oidc_session.session
    session[SESSION_CHECKED_AT] -= middleware.RECHECK_AFTER_OUTAGE_SECONDS
    session.save()
    oidc_session.get(reverse("platform_list"))
    assert len(checker.calls) == 2  # due again after RECHECK_AFTER_OUTAGE_SECONDS


def test_recent_check_is_not_repeated(oidc_session, monkeypatch):
    session = oidc_session.session
    session[SESSION_CHECKED_AT] = time.time()
    session.save()
    checker = use_checker(monkeypatch, NotFound("should not be asked"))
    assert oidc_session.get(reverse("platform_list")).status_code == 200
    assert checker.calls == []


def test_groups_of_the_refreshed_tokens_are_mirrored(oidc_session, member_user, monkeypatch):
    from django.contrib.auth.models import User

    use_checker(
        monkeypatch, TokenSet(access_token="a", refresh_token="r", id_token="i", groups=("/platforms/demo", "/admins"))
    )
    assert oidc_session.get(reverse("platform_list")).status_code == 200
    bob = User.objects.get(pk=member_user.pk)
    assert set(bob.groups.values_list("name", flat=True)) == {"/platforms/demo", "/admins"}
    assert bob.is_staff


def test_tokens_without_a_groups_claim_leave_the_mirror_alone(oidc_session, member_user, monkeypatch):
    use_checker(monkeypatch, TokenSet(access_token="a", refresh_token="r", id_token="i", groups=None))
    oidc_session.get(reverse("platform_list"))
    assert list(member_user.groups.values_list("name", flat=True)) == ["/platform-users"]
