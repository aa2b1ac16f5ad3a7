"""OpenID Connect backend: Keycloak claims -> Django user, groups and the console-admin flag."""

import logging
import time
from urllib.parse import urlencode

import jwt
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

logger = logging.getLogger(__name__)

SESSION_REFRESH_TOKEN = "oidc_refresh_token"
SESSION_CHECKED_AT = "oidc_checked_at"
# Set in the new anonymous session when the session re-check signs someone out, for the signed-out
# page to say why. It holds one of these codes, never Keycloak's own words.
SESSION_SIGNED_OUT_REASON = "signed_out_reason"
SIGNED_OUT_REASONS = {
    "disabled": "Keycloak reports that your account is disabled, so the console signed you out. "
    "Ask a console admin if you think that is a mistake.",
    "ended": "Keycloak no longer accepts your session: it expired, or was ended in Keycloak (by you "
    "elsewhere or by an administrator). The console signed you out too; sign in again to carry on.",
}


class KeycloakOIDCBackend(OIDCAuthenticationBackend):
    """Signs users in through Keycloak and mirrors their Keycloak groups onto the Django user.

    Users are matched by `preferred_username` (Keycloak's username, unique in a realm); the
    `groups` claim carries full group paths such as `/admins` or `/platforms/demo`.
    """

    def verify_token(self, token: str, **kwargs) -> dict:
        """Check the signature and nonce (upstream), then the issuer and audience (here)."""
        try:
            payload = super().verify_token(token, **kwargs)
        except jwt.InvalidTokenError as exc:
            # Upstream turns only DecodeError into SuspiciousOperation; an expired or not-yet-valid
            # token would otherwise escape as a 500.
            raise SuspiciousOperation(f"ID token rejected: {exc}") from None
        if payload.get("iss") != settings.OIDC_OP_ISSUER:
            raise SuspiciousOperation(f"ID token issuer {payload.get('iss')!r} is not ours.")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if settings.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("ID token was not issued for this console.")
        return payload

    def get_token(self, payload: dict) -> dict:
        token_info = super().get_token(payload)
        # Upstream keeps only the access and ID tokens; the refresh token lets the session
        # middleware re-check the Keycloak session later without a browser round trip.
        self._refresh_token = token_info.get("refresh_token", "")
        return token_info

    def store_tokens(self, access_token: str, id_token: str) -> None:
        super().store_tokens(access_token, id_token)
        self.request.session[SESSION_REFRESH_TOKEN] = getattr(self, "_refresh_token", "")
        self.request.session[SESSION_CHECKED_AT] = time.time()

    def verify_claims(self, claims: dict) -> bool:
        return bool(claims.get("preferred_username") and claims.get("sub"))

    def filter_users_by_claims(self, claims: dict):
        return User.objects.filter(username=claims["preferred_username"])

    def create_user(self, claims: dict) -> User:
        user = User.objects.create_user(username=claims["preferred_username"])
        return self.update_user(user, claims)

    def update_user(self, user: User, claims: dict) -> User:
        apply_claims(user, claims)
        return user


@transaction.atomic
def apply_claims(user: User, claims: dict) -> None:
    """Copy names, email and group paths from Keycloak claims onto the user, and save it."""
    user.email = claims.get("email", "") or ""
    user.first_name = (claims.get("given_name", "") or "")[:150]
    user.last_name = (claims.get("family_name", "") or "")[:150]
    groups = mirror_groups(user, claims.get("groups"))
    logger.info("user=%s signed in groups=%s admin=%s", user.username, groups, user.is_staff)


@transaction.atomic
def mirror_groups(user: User, claimed) -> list[str]:
    """Mirror Keycloak group paths (a `groups` claim) onto the user's Django groups and admin flag.

    Saves the user; returns the paths mirrored. Called at sign-in and at every session re-check.
    """
    groups = sorted({g for g in claimed or [] if isinstance(g, str) and g})
    user.is_staff = settings.ADMIN_GROUP in groups
    user.save()
    user.groups.set([Group.objects.get_or_create(name=path[:150])[0] for path in groups])
    # access_rules.group_paths caches the paths on the user object for the rest of the request.
    if hasattr(user, "_group_paths"):
        del user._group_paths
    return groups


def mirror_membership(username: str, path: str, member: bool) -> None:
    """Mirror one membership change made through the console onto the Django user, if they signed in before.

    The platform list then follows at once, without waiting for the user's next session re-check.
    """
    user = User.objects.filter(username=username).first()
    if user is None:
        return
    group, _ = Group.objects.get_or_create(name=path[:150])
    if member:
        user.groups.add(group)
    else:
        user.groups.remove(group)
    if path == settings.ADMIN_GROUP and user.is_staff != member:
        user.is_staff = member
        user.save(update_fields=["is_staff"])


def keycloak_logout_url(request: HttpRequest) -> str:
    """RP-initiated logout: end the Keycloak session too, then come back to the console.

    See https://openid.net/specs/openid-connect-rpinitiated-1_0.html
    """
    params = {
        "client_id": settings.OIDC_RP_CLIENT_ID,
        "post_logout_redirect_uri": request.build_absolute_uri(reverse("logged_out")),
    }
    id_token = request.session.get("oidc_id_token")
    if id_token:
        params["id_token_hint"] = id_token
    return f"{settings.OIDC_OP_LOGOUT_ENDPOINT}?{urlencode(params)}"
