"""Re-checks signed-in sessions against Keycloak so a disabled user loses access within minutes."""

import logging
import time

from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRedirect

from platforms.oidc_backend import SESSION_CHECKED_AT, SESSION_REFRESH_TOKEN, SESSION_SIGNED_OUT_REASON, mirror_groups
from platforms.services.errors import NotFound, Unavailable
from platforms.services.oidc import get_session_checker

logger = logging.getLogger(__name__)


RECHECK_AFTER_OUTAGE_SECONDS = 30


class KeycloakSessionCheckMiddleware:
    """Every OIDC_RECHECK_SECONDS, exchange the session's refresh token at Keycloak.

    If Keycloak refuses (user disabled, session ended in Keycloak), the console session ends too.
    If it accepts, the user's groups are mirrored again from the new tokens, so the platforms a
    user sees follow changes made on the Users page within OIDC_RECHECK_SECONDS.
    If Keycloak cannot be reached, the session carries on and the check is tried again on the
    next request: an outage of the identity provider should not throw everyone out.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._due(request):
            ended = self._check(request)
            if ended:
                return ended
        return self.get_response(request)

    def _due(self, request: HttpRequest) -> bool:
        if not request.user.is_authenticated:
            return False
        if SESSION_REFRESH_TOKEN not in request.session:
            # Every Keycloak sign-in stores this key (platforms.oidc_backend); only sessions made by
            # Django's test client force_login lack it, and they have no Keycloak session to check.
            return False
        checked_at = request.session.get(SESSION_CHECKED_AT, 0)
        return time.time() - checked_at >= settings.OIDC_RECHECK_SECONDS

    def _check(self, request: HttpRequest) -> HttpResponse | None:
        username = request.user.get_username()
        try:
            tokens = get_session_checker().refresh(request.session.get(SESSION_REFRESH_TOKEN, ""))
        except NotFound as exc:
            logger.info("user=%s session ended by Keycloak: %s", username, exc)
            auth.logout(request)
            request.session[SESSION_SIGNED_OUT_REASON] = refusal_reason(exc)
            target = settings.LOGOUT_REDIRECT_URL
            if request.headers.get("HX-Request"):
                return HttpResponseClientRedirect(redirect(target).url)
            return redirect(target)
        except Unavailable as exc:
            logger.warning("user=%s session not re-checked: %s", username, exc)
            # Ask again in a while, not at every request: each ask of a Keycloak that does not
            # answer holds the request for a whole timeout, before the page itself asks Keycloak.
            due_again = time.time() - settings.OIDC_RECHECK_SECONDS + RECHECK_AFTER_OUTAGE_SECONDS
            request.session[SESSION_CHECKED_AT] = min(due_again, time.time())
            return None
        request.session[SESSION_REFRESH_TOKEN] = tokens.refresh_token
        request.session[SESSION_CHECKED_AT] = time.time()
        if tokens.id_token:
            request.session["oidc_id_token"] = tokens.id_token
        if tokens.groups is not None:
            mirror_groups(request.user, tokens.groups)
        return None


def refusal_reason(refusal: NotFound) -> str:
    """The signed-out reason code (platforms.oidc_backend.SIGNED_OUT_REASONS) for Keycloak's refusal of a session."""
    # Keycloak 26's token endpoint answers a disabled user's refresh with invalid_grant and the
    # description "User disabled" (a session ended there: "Session not active"), which the checker's
    # message carries. A structured reason from the checker would be sturdier than this text.
    return "disabled" if "disabled" in str(refusal).lower() else "ended"
