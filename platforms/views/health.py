"""The health endpoint the Kubernetes probes call: 200 when the database and the queue answer, else 503."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from platforms import health


@login_not_required
@never_cache
@require_GET
def health_check(request: HttpRequest) -> HttpResponse:
    """Plain text: "ok", or the failed checks one a line (no details: anyone may call it)."""
    problems = health.problems()
    if problems:
        return HttpResponse("\n".join(problems) + "\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")
