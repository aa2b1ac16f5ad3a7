"""The first pages and the sign-in edges: who sees what, and no 500 on a bad callback."""

from urllib.parse import parse_qs, urlparse

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse


@pytest.mark.django_db
def test_anonymous_user_is_sent_to_sign_in():
    response = Client().get(reverse("platform_list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("oidc_authentication_init"))


@pytest.mark.django_db
def test_sign_in_starts_at_keycloak_with_state_nonce_and_pkce():
    response = Client().get(reverse("oidc_authentication_init"))
    assert response.status_code == 302
    target = urlparse(response["Location"])
    query = parse_qs(target.query)
    assert response["Location"].startswith(settings.OIDC_OP_AUTHORIZATION_ENDPOINT)
    assert query["client_id"] == [settings.OIDC_RP_CLIENT_ID]
    assert "groups" in query["scope"][0].split()
    assert query["state"] and query["nonce"] and query["code_challenge_method"] == ["S256"]


def test_normal_user_sees_empty_platform_list_and_no_admin_badge(member_client):
    response = member_client.get(reverse("platform_list"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "bob" in body
    assert 'data-testid="role">User<' in body
    assert "shared with you" in body


def test_admin_sees_admin_badge(admin_client):
    body = admin_client.get(reverse("platform_list")).content.decode()
    assert 'data-testid="role">Admin<' in body
    assert "No BinderHub platforms yet" in body


def test_base_layout_serves_vendored_htmx_and_csrf_header(member_client):
    body = member_client.get(reverse("platform_list")).content.decode()
    assert "/static/django_htmx/htmx" in body
    assert 'hx-headers=\'{"x-csrftoken": "' in body
    assert "cdn" not in body.lower()


@pytest.mark.django_db
def test_callback_with_tampered_state_shows_error_page_not_500():
    client = Client()
    client.get(reverse("oidc_authentication_init"))  # puts a real state in the session
    response = client.get(reverse("oidc_authentication_callback"), {"state": "tampered", "code": "abc"})
    assert response.status_code == 400
    assert "Sign-in failed" in response.content.decode()


@pytest.mark.django_db
def test_callback_without_a_started_sign_in_shows_error_page():
    response = Client().get(reverse("oidc_authentication_callback"), {"state": "x", "code": "abc"})
    assert response.status_code == 400
    assert "Sign in again" in response.content.decode()


@pytest.mark.django_db
def test_callback_with_keycloak_error_explains_it():
    response = Client().get(
        reverse("oidc_authentication_callback"), {"error": "access_denied", "error_description": "User cancelled"}
    )
    assert response.status_code == 400
    assert "User cancelled" in response.content.decode()


def test_logout_ends_keycloak_session_too(member_client):
    session = member_client.session
    session["oidc_id_token"] = "the-id-token"
    session.save()
    response = member_client.post(reverse("oidc_logout"))
    assert response.status_code == 302
    target = urlparse(response["Location"])
    query = parse_qs(target.query)
    assert response["Location"].startswith(settings.OIDC_OP_LOGOUT_ENDPOINT)
    assert query["id_token_hint"] == ["the-id-token"]
    assert query["post_logout_redirect_uri"] == ["http://testserver" + reverse("logged_out")]
    assert member_client.get(reverse("platform_list")).status_code == 302


def test_logout_by_get_is_refused(member_client):
    assert member_client.get(reverse("oidc_logout")).status_code == 405


@pytest.mark.django_db
def test_signed_out_page_needs_no_login():
    response = Client().get(reverse("logged_out"))
    assert response.status_code == 200
    assert "signed out" in response.content.decode()
