"""The OIDC backend maps Keycloak claims onto users and rejects tokens not meant for us."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation

from platforms.access_rules import is_console_admin
from platforms.oidc_backend import KeycloakOIDCBackend, apply_claims


def claims(**overrides) -> dict:
    base = {
        "sub": "0d5c",
        "preferred_username": "carol",
        "email": "carol@example.org",
        "given_name": "Carol",
        "family_name": "Jones",
        "groups": ["/admins", "/platforms/demo"],
    }
    return {**base, **overrides}


@pytest.mark.django_db
def test_first_sign_in_creates_user_with_names_groups_and_admin_flag():
    user = KeycloakOIDCBackend().create_user(claims())
    user.refresh_from_db()
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "carol",
        "carol@example.org",
        "Carol",
        "Jones",
    )
    assert sorted(user.groups.values_list("name", flat=True)) == ["/admins", "/platforms/demo"]
    assert is_console_admin(user)


@pytest.mark.django_db
def test_next_sign_in_replaces_groups_and_drops_admin():
    user = KeycloakOIDCBackend().create_user(claims())
    apply_claims(user, claims(groups=["/platform-users"], email="new@example.org"))
    user.refresh_from_db()
    assert list(user.groups.values_list("name", flat=True)) == ["/platform-users"]
    assert user.email == "new@example.org"
    assert not is_console_admin(user)


@pytest.mark.django_db
def test_user_is_matched_by_keycloak_username():
    existing = User.objects.create_user(username="carol")
    assert list(KeycloakOIDCBackend().filter_users_by_claims(claims())) == [existing]


def test_claims_without_username_are_refused():
    assert not KeycloakOIDCBackend().verify_claims(claims(preferred_username=""))


@pytest.fixture
def signing_key(settings):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings.OIDC_RP_IDP_SIGN_KEY = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return key


def id_token(key, **overrides) -> str:
    now = int(time.time())
    payload = {
        "iss": settings.OIDC_OP_ISSUER,
        "aud": settings.OIDC_RP_CLIENT_ID,
        "sub": "0d5c",
        "nonce": "n-1",
        "iat": now,
        "exp": now + 300,
        **overrides,
    }
    return jwt.encode(payload, key, algorithm="RS256")


def test_token_from_our_issuer_for_our_client_is_accepted(signing_key):
    payload = KeycloakOIDCBackend().verify_token(id_token(signing_key), nonce="n-1")
    assert payload["sub"] == "0d5c"


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "http://127.0.0.1:18080/realms/other"},
        {"aud": "someone-else"},
        {"exp": int(time.time()) - 3600},
        {"nonce": "replayed"},
    ],
    ids=["wrong-issuer", "wrong-audience", "expired", "wrong-nonce"],
)
def test_token_not_meant_for_this_console_is_rejected(signing_key, overrides):
    with pytest.raises(SuspiciousOperation):
        KeycloakOIDCBackend().verify_token(id_token(signing_key, **overrides), nonce="n-1")


def test_token_signed_by_another_key_is_rejected(signing_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(SuspiciousOperation):
        KeycloakOIDCBackend().verify_token(id_token(other), nonce="n-1")
