"""Re-checks a signed-in session against Keycloak's OpenID Connect token endpoint."""

import logging
from functools import cache

import jwt
import requests
from django.conf import settings

from platforms.services.errors import NotFound, Unavailable
from platforms.services.interfaces import SessionRefresher
from platforms.services.types import TokenSet

logger = logging.getLogger(__name__)


class SessionChecker:
    """Uses a session's refresh token to ask Keycloak whether the session is still good."""

    def __init__(self, token_endpoint: str, client_id: str, client_secret: str, timeout: int):
        self.token_endpoint = token_endpoint
        self.client_id = client_id
        self.client_secret = client_secret
        self.timeout = timeout

    def refresh(self, refresh_token: str) -> TokenSet:
        """Exchange the refresh token for fresh tokens.

        Raises NotFound when Keycloak no longer accepts the session (signed out, session expired,
        user disabled or deleted) and Unavailable when Keycloak cannot be asked.
        See https://datatracker.ietf.org/doc/html/rfc6749#section-6 for the grant.
        """
        if not refresh_token:
            raise NotFound("This session has no Keycloak refresh token.")
        try:
            response = requests.post(
                self.token_endpoint,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                },
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise Unavailable(f"Keycloak could not be reached to re-check the session: {exc}") from exc
        if response.status_code in (400, 401):
            # invalid_grant: the session or user is gone; anything else 4xx is a client problem.
            raise NotFound(f"Keycloak ended this session ({_error_text(response)}).")
        if response.status_code != 200:
            raise Unavailable(f"Keycloak answered {response.status_code} when re-checking the session.")
        data = response.json()
        return TokenSet(
            access_token=data.get("access_token", ""),
            refresh_token=data.get("refresh_token", refresh_token),
            id_token=data.get("id_token", ""),
            groups=groups_claim(data.get("id_token", "") or data.get("access_token", "")),
        )


def groups_claim(token: str) -> tuple[str, ...] | None:
    """The `groups` claim of a token this checker just received from the token endpoint, or None.

    The signature is not checked: the token came straight from Keycloak's token endpoint over the
    connection the client authenticated on, which OpenID Connect Core 3.1.3.7 allows in its place.
    """
    if not token:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    groups = claims.get("groups")
    if not isinstance(groups, list):
        return None
    return tuple(group for group in groups if isinstance(group, str))


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    return body.get("error_description") or body.get("error") or f"HTTP {response.status_code}"


@cache
def get_session_checker() -> SessionRefresher:
    """The configured session checker (tests may clear this cache to swap settings)."""
    return SessionChecker(
        token_endpoint=settings.OIDC_OP_TOKEN_ENDPOINT,
        client_id=settings.OIDC_RP_CLIENT_ID,
        client_secret=settings.OIDC_RP_CLIENT_SECRET,
        timeout=settings.KEYCLOAK_TIMEOUT_SECONDS,
    )
