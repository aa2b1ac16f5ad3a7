"""The audit log page for console admins, and its CSV and JSON exports with the same filters."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from platforms import audit_log
from platforms.access_rules import require_console_admin

EVENTS_PER_PAGE = 50
EXPORTS = {
    "csv": ("text/csv; charset=utf-8", audit_log.csv_lines),
    "json": ("application/json", audit_log.json_chunks),
}


@login_required
@require_GET
def audit_page(request: HttpRequest) -> HttpResponse:
    """The filtered audit log, a page at a time, with links to export exactly what is shown."""
    require_console_admin(request.user, "read the audit log")
    form = audit_log.AuditFilterForm(request.GET or None)
    valid = form.is_valid() if form.is_bound else True
    context: dict = {"form": form}
    if valid:
        events = audit_log.filtered_events(form.cleaned_data if form.is_bound else {})
        context["page"] = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
        # The filters without the page number: the exports and the pager's links carry them on.
        context["filters"] = request.GET.copy()
        context["filters"].pop("page", None)
    return render(request, "platforms/audit_log.html", context, status=200 if valid else 400)


@login_required
@require_GET
def audit_export(request: HttpRequest, export_format: str) -> HttpResponse:
    """The filtered audit log as a CSV or JSON download; bad filters get the page with their errors."""
    require_console_admin(request.user, "export the audit log")
    form = audit_log.AuditFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "platforms/audit_log.html", {"form": form}, status=400)
    content_type, serialise = EXPORTS[export_format]
    response = StreamingHttpResponse(serialise(audit_log.filtered_events(form.cleaned_data)), content_type=content_type)
    filename = f"audit-{timezone.now():%Y%m%d-%H%M%S}.{export_format}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
