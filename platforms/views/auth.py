"""Sign-in pages around mozilla-django-oidc: a callback that never 500s, and the signed-out page."""

import logging

import requests
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView

from platforms.oidc_backend import SESSION_SIGNED_OUT_REASON, SIGNED_OUT_REASONS

logger = logging.getLogger(__name__)


class CallbackView(OIDCAuthenticationCallbackView):
    """The OIDC callback, answering a tampered, replayed or failed sign-in with a clear page."""

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            return super().get(request)
        except SuspiciousOperation as exc:
            # Bad or reused state, wrong nonce, issuer or audience, bad signature.
            logger.warning("sign-in rejected: %s", exc)
            return login_failed_page(request, "The sign-in response was not valid for this session.")
        except requests.HTTPError as exc:
            # Keycloak refused the code: typically it was already used, or has expired.
            logger.warning("sign-in code refused by Keycloak: %s", exc)
            return login_failed_page(
                request, "Keycloak refused the sign-in code; it may have been used already or expired."
            )
        except requests.RequestException as exc:
            logger.error("sign-in failed, Keycloak unreachable: %s", exc)
            return login_failed_page(request, "Keycloak could not be reached. Try again in a minute.", status=503)

    def login_failure(self) -> HttpResponse:
        reason = self.request.GET.get("error_description") or self.request.GET.get("error") or ""
        message = "Keycloak did not sign you in."
        if reason:
            message = f"Keycloak did not sign you in: {reason[:200]}."
        return login_failed_page(self.request, message)


def login_failed_page(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    """The page shown when a sign-in attempt cannot be completed."""
    return render(request, "auth/login_failed.html", {"message": message}, status=status)


@login_not_required
@require_GET
def login_failed(request: HttpRequest) -> HttpResponse:
    """Where mozilla-django-oidc sends a failed sign-in that has no more specific reason."""
    return login_failed_page(request, "The sign-in could not be completed.")


@login_not_required
@require_GET
def logged_out(request: HttpRequest) -> HttpResponse:
    """Where Keycloak returns the browser after signing out, and the session re-check sends a refused session.

    The re-check leaves a reason code in the session; it is shown once, and only if it is a known code.
    """
    ctx = {"reason": SIGNED_OUT_REASONS.get(request.session.pop(SESSION_SIGNED_OUT_REASON, ""))}
    return render(request, "auth/logged_out.html", ctx)
