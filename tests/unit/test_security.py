"""Every page carries a Content-Security-Policy limited to the console's own files, and frame denial."""

from django.test import Client
from django.urls import reverse


def test_pages_carry_csp_and_frame_denial(db):
    response = Client().get(reverse("logged_out"))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self' http://127.0.0.1:18080" in policy
    assert response["X-Frame-Options"] == "DENY"


def test_csrf_cookie_is_http_only(member_client):
    response = member_client.get(reverse("platform_list"))
    assert response.cookies["csrftoken"]["httponly"]
