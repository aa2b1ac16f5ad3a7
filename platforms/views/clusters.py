"""Cluster pages: admins register existing Kubernetes clusters, check them, and remove unused ones."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from platforms import capacity
from platforms.access_rules import require_console_admin
from platforms.forms import ClusterForm
from platforms.models import AuditEvent, Cluster
from platforms.refusals import TOO_LARGE
from platforms.services import kube, kubeconfig
from platforms.services.errors import ServiceError


@login_required
@require_GET
def cluster_list(request: HttpRequest) -> HttpResponse:
    require_console_admin(request.user, "manage clusters")
    ctx = {"clusters": Cluster.objects.annotate(platform_count=Count("platforms"))}
    return render(request, "platforms/cluster_list.html", ctx)


@login_required
@require_http_methods(["GET", "POST"])
def cluster_create(request: HttpRequest) -> HttpResponse:
    require_console_admin(request.user, "register clusters")
    form = cluster_form(request)
    if request.method == "POST" and form.is_valid():
        cluster = form.save(commit=False)
        cluster.created_by = request.user
        cluster.save()
        AuditEvent.record(request.user, "cluster.register", cluster.name, cluster.server_version)
        messages.success(request, f"Cluster {cluster.name} registered: Kubernetes {cluster.server_version}.")
        return redirect(cluster)
    return render(request, "platforms/cluster_form.html", {"form": form, "cluster": None})


def cluster_form(request: HttpRequest, instance: Cluster | None = None) -> ClusterForm:
    """The form, bound to a post; after a post too large to read, unbound and saying so."""
    form = ClusterForm(request.POST or None, request.FILES or None, instance=instance)
    if request.method == "GET" and TOO_LARGE in request.GET:
        form.refuse_too_large()
    return form


@login_required
@require_POST
def kubeconfig_contexts(request: HttpRequest) -> HttpResponse:
    """The contexts of the kubeconfig being pasted, offered as the context field's choices (a fragment)."""
    require_console_admin(request.user, "register clusters")
    try:
        names = kubeconfig.contexts(request.POST.get("kubeconfig", "")).names
    except ServiceError:
        names = []  # the form says what is wrong with it when it is submitted
    return render(request, "platforms/_kubeconfig_contexts.html", {"names": names})


@login_required
@require_GET
def cluster_detail(request: HttpRequest, name: str) -> HttpResponse:
    require_console_admin(request.user, "manage clusters")
    cluster = get_object_or_404(Cluster, name=name)
    platforms = list(cluster.platforms.order_by("name"))
    ctx = {"cluster": cluster, "platforms": platforms, "capacity": capacity_summary(platforms)}
    return render(request, "platforms/cluster_detail.html", ctx | capacity_context(cluster))


def capacity_context(cluster: Cluster) -> dict:
    """What _cluster_capacity.html shows: the capacity read at the cluster's last check, if any."""
    found = capacity.from_json(cluster.capacity)
    if found is None:
        return {}
    return {
        "cluster_capacity": capacity.totals(found),
        "storage_classes": found.storage_classes,
        "default_storage_class": found.default_storage_class,
    }


CHART_WIDTH = 240  # pixels of the longest bar in the capacity chart


def capacity_summary(platforms: list) -> dict:
    """What the cluster's platforms ask for, per platform and in total, with bar lengths for a chart.

    Per platform: CPUs and RAM of one notebook server times the servers a user may run (one when
    unlimited), and storage as the registry plus one user's notebook volume.
    """
    rows = []
    for platform in platforms:
        servers = platform.servers_per_user or 1
        rows.append(
            {
                "name": platform.name,
                "cpus": float(platform.notebook_cpus) * servers,
                "ram_gb": platform.notebook_ram_gb * servers,
                "storage_gb": platform.registry_storage_gb + platform.notebook_storage_gb,
            }
        )
    resources = ("cpus", "ram_gb", "storage_gb")
    totals = {key: sum(row[key] for row in rows) for key in resources}
    peaks = {key: max((row[key] for row in rows), default=0) or 1 for key in resources}
    for row in rows:
        row["bars"] = {key: max(2, round(CHART_WIDTH * row[key] / peaks[key])) for key in resources}
    return {"rows": rows, "totals": totals, "width": CHART_WIDTH}


@login_required
@require_http_methods(["GET", "POST"])
def cluster_edit(request: HttpRequest, name: str) -> HttpResponse:
    require_console_admin(request.user, "change clusters")
    cluster = get_object_or_404(Cluster, name=name)
    form = cluster_form(request, cluster)
    if request.method == "POST" and form.is_valid():
        cluster = form.save()
        AuditEvent.record(request.user, "cluster.change", cluster.name)
        messages.success(request, f"Cluster {cluster.name} saved and checked.")
        return redirect(cluster)
    return render(request, "platforms/cluster_form.html", {"form": form, "cluster": cluster})


@login_required
@require_POST
def cluster_check(request: HttpRequest, name: str) -> HttpResponse:
    """Check the cluster now and record what the API server said (or why it could not be asked)."""
    require_console_admin(request.user, "check clusters")
    cluster = get_object_or_404(Cluster, name=name)
    try:
        version = kube.get_kube().server_version(cluster.access())
    except ServiceError as exc:
        cluster.check_error = str(exc)
    else:
        cluster.server_version = version.git_version
        cluster.check_error = ""
        cluster.capacity, cluster.capacity_error = capacity.read(cluster.access())
    cluster.checked_at = timezone.now()
    cluster.save(
        update_fields=["server_version", "check_error", "capacity", "capacity_error", "checked_at", "updated_at"]
    )
    if request.htmx:
        return render(request, "platforms/_cluster_check.html", {"cluster": cluster} | capacity_context(cluster))
    return redirect(cluster)


@login_required
@require_POST
def cluster_delete(request: HttpRequest, name: str) -> HttpResponse:
    require_console_admin(request.user, "remove clusters")
    cluster = get_object_or_404(Cluster, name=name)
    count = cluster.platforms.count()
    if count:
        messages.error(request, f"Cluster {cluster.name} still has {count} platform(s): delete them first.")
        return redirect(cluster)
    cluster.delete()
    AuditEvent.record(request.user, "cluster.remove", name)
    messages.success(request, f"Cluster {name} removed from the console (nothing on the cluster was changed).")
    if request.htmx:  # the confirmed htmx post: send the whole page on to the list
        return HttpResponseClientRedirect(reverse("cluster_list"))
    return redirect("cluster_list")
