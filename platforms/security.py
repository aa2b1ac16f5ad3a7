"""Security headers: a Content-Security-Policy that allows only the console's own static files."""

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def content_security_policy() -> str:
    """The policy: own scripts, styles and images only (service icons are static files too).

    form-action names Keycloak because browsers apply it to the redirect after a form post too
    (signing out posts here, then goes on to Keycloak's logout endpoint).
    """
    keycloak = urlsplit(settings.KEYCLOAK_URL)
    keycloak_origin = f"{keycloak.scheme}://{keycloak.netloc}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            f"form-action 'self' {keycloak_origin}",
            "frame-ancestors 'none'",
        ]
    )


class ContentSecurityPolicyMiddleware:
    """Adds the Content-Security-Policy header to every response that does not set its own."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = content_security_policy()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.policy)
        return response
