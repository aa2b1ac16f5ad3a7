"""Platform pages: list, launch, detail, edit (upgrade), rollback and delete of BinderHub platforms."""

import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.db.models import F, FilteredRelation, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from platforms import expiry, operations, tasks
from platforms.access_rules import SERVICES, group_paths, is_console_admin, require_console_admin, services_reached
from platforms.forms import EditPlatformForm, LaunchForm
from platforms.models import Cluster, Operation, Platform, PlatformBusy
from platforms.oidc_backend import mirror_groups
from platforms.service_addresses import is_service_url
from platforms.services import charts
from platforms.services.errors import NotFound, ServiceError
from platforms.views.access import SERVICE_LABELS, current_group_paths

PLATFORMS_PER_PAGE = 25
OPERATIONS_SHOWN = 10


def visible_platform_or_404(request: HttpRequest, name: str) -> Platform:
    """The platform, if the user may see it; outsiders get the same 404 as for a missing one."""
    platforms = Platform.objects.visible_to(request.user).select_related("cluster", "created_by", "updated_by")
    return get_object_or_404(platforms, name=name)


def available_app_versions(refresh: bool = False) -> tuple[list[str], str]:
    """The App version choices, and a message for the form if the repository cannot be read."""
    try:
        return charts.app_versions(refresh=refresh), ""
    except ServiceError as exc:
        return [], f"The list of app versions could not be read: {exc}"


@login_required
@require_GET
def platform_list(request: HttpRequest) -> HttpResponse:
    """The platforms the user may see, with their status and service links, a page at a time."""
    visible = Platform.objects.visible_to(request.user).order_by("name")
    # Counted without the rows' joins (cluster, creator, usage), which change no count: with them,
    # the count was the one part of the page whose cost grew with the number of platforms.
    page = Paginator(visible, PLATFORMS_PER_PAGE).get_page(request.GET.get("page"))
    first = (page.number - 1) * PLATFORMS_PER_PAGE
    rows = visible.annotate(**service_link_joins()).values(*LIST_FIELDS, *USAGE_FIELDS, *LINK_READY_FIELDS)
    return render(
        request,
        "platforms/platform_list.html",
        {"rows": list_rows(rows[first : first + PLATFORMS_PER_PAGE]), "page": page},
    )


# The list is the busiest page: its rows are plain dicts from one query, not model instances,
# which halves its render time (bench/page_speed.py).
LIST_FIELDS = (
    "id",
    "name",
    "app_version",
    "status",
    "expires_at",
    "created_at",
    "cluster__name",
    "created_by__username",
)
# The usage column comes from the same query (a join on the worker's stored readings), never from a hub.
USAGE_FIELDS = ("usage__active_users", "usage__servers", "usage__read_at", "usage__error")
# Each service's link too: whether it is ready, None without one. A second query with the page's
# platform ids cost more, and more with every row (bench/request_cost.py).
LINK_READY_FIELDS = tuple(f"{service}_link__ready" for service in SERVICES)


def service_link_joins() -> dict[str, FilteredRelation]:
    """A join on each service's link (at most one: one link per platform and service).

    New for every query: a FilteredRelation belongs to the query that uses it.
    """
    return {
        f"{service}_link": FilteredRelation("service_links", condition=Q(service_links__name=service))
        for service in SERVICES
    }


def list_rows(platforms) -> list[dict]:
    """The list page's rows: each platform with its URL and its service links' (name, ready)."""
    # One reverse() for the page, not one a row (it was most of a row's cost): a platform's name is a
    # DNS label, which a path holds as it is.
    detail_prefix = reverse("platform_detail", args=["_"]).removesuffix("_/")
    rows = list(platforms)
    for row in rows:
        row["url"] = f"{detail_prefix}{row['name']}/"
        row["links"] = [
            (service, ready) for service in SERVICES if (ready := row[f"{service}_link__ready"]) is not None
        ]
    return rows


@login_required
@require_http_methods(["GET", "POST"])
def platform_create(request: HttpRequest) -> HttpResponse:
    """The launch form; a valid launch records the platform and its install operation."""
    require_console_admin(request.user, "launch platforms")
    versions, versions_error = available_app_versions()
    # "Launch one onto it" on a cluster's page links here with ?cluster=<name>.
    initial = {"cluster": Cluster.objects.filter(name=request.GET.get("cluster", "")).first()}
    form = LaunchForm(request.POST or None, app_versions=versions, initial=initial)
    if request.method == "POST" and form.is_valid():
        platform = form.save(commit=False)
        try:
            operations.launch(platform, request.user)
        except IntegrityError:
            form.add_error("name", "A platform with this name already exists.")
        else:
            messages.success(request, f"Launch of {platform.name} requested.")
            if form.capacity_warning:
                messages.warning(request, form.capacity_warning)
            return redirect(platform)
    ctx = {
        "form": form,
        "versions_error": versions_error,
        "has_clusters": Cluster.objects.exists(),
        "validate_url": reverse("platform_validate"),
    }
    return render(request, "platforms/platform_form.html", ctx)


@login_required
@require_POST
def platform_validate(request: HttpRequest) -> HttpResponse:
    """Inline validation as a person types: the errors of one launch-form field, as a fragment."""
    require_console_admin(request.user, "launch platforms")
    versions, _ = available_app_versions()
    form = LaunchForm(request.POST, app_versions=versions)
    name = request.POST.get("_field", "")
    if name not in form.fields:
        return HttpResponse(status=400)
    form.is_valid()
    return render(request, "platforms/_field_errors.html", {"field": form[name]})


def live_context(request: HttpRequest, platform: Platform) -> dict:
    """What the live part of the platform page shows: status, services and the operation log."""
    # The actor's name alone, not their whole user row: a third of this query's time (measured in-process).
    recent = list(platform.operations.annotate(actor_name=F("actor__username"))[:OPERATIONS_SHOWN])
    active = any(op.state in Operation.ACTIVE_STATES for op in recent)
    return {
        "platform": platform,
        "links": list(platform.service_links.all()),
        "operations": recent,
        # The revisions a rollback may return to (the first deployed now), and whether one may be asked.
        "revisions": operations.revisions(platform),
        "busy": active,
        "history_max": operations.HISTORY_MAX,
        "can_manage": is_console_admin(request.user),
        # Final: nothing queued or running and nothing to wait for; the page stops polling.
        "final": not active and platform.status in (Platform.Status.DEPLOYED, Platform.Status.FAILED),
    }


@login_required
@require_GET
def platform_detail(request: HttpRequest, name: str) -> HttpResponse:
    # The names of its cluster and of the people, not their whole rows: this page's busiest query; and
    # the worker's last usage reading of its hub.
    platforms = Platform.objects.visible_to(request.user).annotate(
        cluster_name=F("cluster__name"),
        created_by_name=F("created_by__username"),
        updated_by_name=F("updated_by__username"),
        usage_active_users=F("usage__active_users"),
        usage_servers=F("usage__servers"),
        usage_read_at=F("usage__read_at"),
        usage_error=F("usage__error"),
    )
    platform = get_object_or_404(platforms, name=name)
    return render(request, "platforms/platform_detail.html", live_context(request, platform))


@login_required
@require_GET
def platform_status(request: HttpRequest, name: str) -> HttpResponse:
    """The live fragment the platform page polls; HTTP 286 stops the polling once the state is final."""
    platform = Platform.objects.visible_to(request.user).select_related("cluster").filter(name=name).first()
    if platform is None:
        # Uninstalled while someone watched: send them to the list instead of polling a 404.
        if not Platform.objects.filter(name=name).exists():
            messages.success(request, f"{name} is deleted: its release, namespace and Keycloak groups are gone.")
        response = HttpResponseClientRedirect(reverse("platform_list"))
        response.status_code = 286
        return response
    ctx = live_context(request, platform) | {"poll": True}
    if not ctx["final"] and platform.status in (Platform.Status.INSTALLING, Platform.Status.UPGRADING):
        tasks.enqueue_sync_links(platform)
    response = render(request, "platforms/_platform_live.html", ctx)
    if ctx["final"]:
        response.status_code = 286
    return response


@login_required
@require_POST
def platform_retry(request: HttpRequest, name: str) -> HttpResponse:
    """Retry a failed platform: run its last failed operation again (an install if it never had one)."""
    require_console_admin(request.user, "retry platform operations")
    platform = visible_platform_or_404(request, name)
    try:
        operation = operations.retry(platform, request.user)
    except (operations.NothingToRetry, PlatformBusy) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{operation.kind.capitalize()} of {platform.name} requested again.")
    return redirect(platform)


@login_required
@require_POST
def platform_rollback(request: HttpRequest, name: str) -> HttpResponse:
    """Roll the platform back to the Helm revision an earlier operation deployed (its id is posted)."""
    require_console_admin(request.user, "roll platforms back")
    platform = visible_platform_or_404(request, name)
    operation_id = request.POST.get("operation", "")
    # Only this platform's operations, and only an id the database can hold: anything else is a choice
    # the page never offered.
    target = None
    if re.fullmatch(r"[0-9]{1,18}", operation_id):
        target = platform.operations.filter(pk=int(operation_id)).first()
    if target is None:
        messages.error(request, "Choose one of the revisions listed on the platform's page to roll back to.")
        return redirect(platform)
    try:
        operation = operations.rollback(platform, target, request.user)
    except (operations.RollbackRefused, PlatformBusy) as exc:
        messages.error(request, str(exc))
    else:
        revision = operation.rollback_revision
        messages.success(request, f"Rollback of {platform.name} to revision {revision} requested.")
    return redirect(platform)


@login_required
@require_GET
def service_redirect(request: HttpRequest, name: str, service: str) -> HttpResponse:
    """Click-through to a service: only to its recorded link, and only for users allowed to reach it.

    The groups are Keycloak's as of now, not as mirrored at sign-in, so the click-through admits
    exactly whom the Users page shows (a member removed a moment ago included).
    """
    if service not in SERVICES:
        raise Http404("No such service.")
    platform = Platform.objects.filter(name=name).first()
    try:
        paths = current_group_paths(request.user)
    except NotFound as exc:
        raise PermissionDenied(f"{exc} Ask an admin.") from None
    except ServiceError as exc:
        platform = visible_platform_or_404(request, name)  # by the groups mirrored at sign-in
        ctx = {"platform": platform, "message": str(exc)}
        return render(request, "platforms/access_unavailable.html", ctx, status=503)
    if paths != group_paths(request.user):
        # Keep the mirror in step too, so the platform list agrees with what was just checked.
        mirror_groups(request.user, paths)
    reached = services_reached(paths, name) if platform else set()
    if not reached:
        # A platform the user may not see answers exactly as one that does not exist.
        raise Http404("No such platform.")
    if service not in reached:
        label = SERVICE_LABELS[service]
        raise PermissionDenied(f"You are not in a group that may use {label} of {platform.name}. Ask an admin.")
    link = platform.service_links.filter(name=service).first()
    if link and link.ready and is_service_url(link.url):
        return HttpResponseRedirect(link.url)
    ctx = {"platform": platform, "service": service, "link": link}
    return render(request, "platforms/service_waiting.html", ctx, status=503)


@login_required
@require_http_methods(["GET", "POST"])
def platform_edit(request: HttpRequest, name: str) -> HttpResponse:
    """Change the app version and options: an upgrade of the release."""
    require_console_admin(request.user, "change platforms")
    platform = visible_platform_or_404(request, name)
    versions, versions_error = available_app_versions()
    form = EditPlatformForm(request.POST or None, instance=platform, app_versions=versions)
    if request.method == "POST" and form.is_valid():
        platform = form.save(commit=False)
        try:
            operation = operations.change(platform, request.user)
        except PlatformBusy as exc:
            form.add_error(None, str(exc))
        else:
            if operation:
                messages.success(request, f"Upgrade of {platform.name} requested.")
            else:
                messages.success(request, f"{platform.name}: {expiry_saved(platform)}, with no upgrade needed.")
            if form.capacity_warning:
                messages.warning(request, form.capacity_warning)
            return redirect(platform)
    ctx = {"form": form, "platform": platform, "versions_error": versions_error}
    return render(request, "platforms/platform_form.html", ctx)


def expiry_saved(platform: Platform) -> str:
    """What an expiry-only change saved, in words."""
    if platform.expires_at is None:
        return "expiry removed"
    return f"now expires at the end of {expiry.day_of(platform.expires_at):%Y-%m-%d}"


@login_required
@require_http_methods(["GET", "POST"])
def platform_delete(request: HttpRequest, name: str) -> HttpResponse:
    """Delete after the admin types the platform's name: an uninstall of the release."""
    require_console_admin(request.user, "delete platforms")
    platform = visible_platform_or_404(request, name)
    error = ""
    if request.method == "POST":
        if request.POST.get("confirm_name", "").strip() != platform.name:
            error = f"Type {platform.name} exactly to confirm."
        else:
            try:
                operations.delete(platform, request.user)
            except PlatformBusy as exc:
                error = str(exc)
            else:
                messages.success(request, f"Deletion of {platform.name} requested.")
                return redirect(platform)
    status = 400 if error else 200
    return render(request, "platforms/platform_delete.html", {"platform": platform, "error": error}, status=status)


@login_required
@require_POST
def app_versions_refresh(request: HttpRequest) -> HttpResponse:
    """Re-read the chart repository now instead of waiting for the cache to expire."""
    require_console_admin(request.user, "refresh app versions")
    _, error = available_app_versions(refresh=True)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, "App versions refreshed from the chart repository.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "platform_create"
    return redirect(target)
