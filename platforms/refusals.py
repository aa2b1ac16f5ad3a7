"""Middleware for requests the console refuses: one log line for a 403, a form message for an oversized post."""

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.defaults import permission_denied

logger = logging.getLogger(__name__)

# The query parameter a page reads to say that what was sent to it was too large.
TOO_LARGE = "too_large"


class PermissionDeniedLogMiddleware:
    """Answers PermissionDenied with the 403 page and logs it once, as one line.

    Django would log it with a whole traceback (the refusal is expected, not a fault).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, PermissionDenied):
            return None
        user = request.user.get_username() if request.user.is_authenticated else "-"
        logger.warning("forbidden user=%s path=%s reason=%s", user, request.path, str(exception) or "-")
        response = permission_denied(request, exception)
        response._has_been_logged = True  # django.utils.log.log_response would log it again
        return response


class OversizedPostMiddleware:
    """A post over DATA_UPLOAD_MAX_MEMORY_SIZE goes back to its page with ?too_large=1, where the
    form says so, instead of Django's 400 page. Placed before the CSRF check, which reads the body;
    the redirect changes nothing, so it needs no token."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            try:
                request.POST  # noqa: B018 - reading it is what raises
            except RequestDataTooBig:
                logger.warning("post to %s refused: larger than DATA_UPLOAD_MAX_MEMORY_SIZE", request.path)
                return HttpResponseRedirect(f"{request.path}?{TOO_LARGE}=1", status=303)
        return self.get_response(request)
