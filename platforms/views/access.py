"""Access pages: a platform's Users page and the realm-wide Access page, both over Keycloak groups.

Every page shows Keycloak's current state, read on each request in a bounded number of admin API
calls (two per group shown, one per search) whatever the member count, and never waits twice in
one request for a Keycloak that did not answer. Changes are single synchronous admin API calls,
each written to the audit log; a change whose answer never came is logged as of unknown outcome.
"""

import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from platforms import tasks, values
from platforms.access_rules import (
    SERVICES,
    platform_group,
    platform_groups,
    realm_groups,
    require_console_admin,
    services_reached,
)
from platforms.models import AuditEvent, Platform
from platforms.oidc_backend import mirror_membership
from platforms.services import keycloak
from platforms.services.errors import Conflict, NotFound, OutcomeUnknown, ServiceError, Unavailable
from platforms.services.types import DirectoryUser, UserPage

MEMBERS_PAGE_SIZE = 50
SEARCH_PAGE_SIZE = 20
AUDIT_LOG_LENGTH = 50
# The services' display names, from the one table that also gives the links their labels and icons.
SERVICE_LABELS = {service: label for service, (label, _icon) in values.SERVICE_LABELS.items()}


@dataclass(frozen=True)
class GroupSpec:
    """A group an access page shows: its key in forms and URLs, labels, its path, and whether it is managed there."""

    key: str
    label: str
    add_label: str  # the search results' button that adds a user to it
    path: str
    managed: bool = True


@dataclass
class GroupView:
    """A group as loaded from Keycloak for one request: a page of members, or why there is none."""

    spec: GroupSpec
    page: UserPage | None = None
    missing: str = ""


@dataclass
class Scope:
    """What one access page covers: a platform's groups (its Users page) or the realm's groups."""

    groups: list[GroupSpec]
    url_names: str  # prefix of the URL names: "platform_users" or "access"
    platform: Platform | None = None
    url_args: list[str] = field(default_factory=list)

    def url(self, action: str = "") -> str:
        return reverse(f"{self.url_names}_{action}" if action else self.url_names, args=self.url_args)

    def urls(self) -> dict[str, str]:
        return {action or "page": self.url(action) for action in ("", "search", "add", "remove", "repair")}

    def managed(self) -> dict[str, GroupSpec]:
        return {spec.key: spec for spec in self.groups if spec.managed}

    def audit_filter(self) -> Q:
        if self.platform:
            path = platform_group(self.platform.name)
            return Q(target=self.platform.name) | Q(target=path) | Q(target__startswith=f"{path}/")
        return Q(target__in=[spec.path for spec in self.groups] + [tasks.REALM_TARGET])


def platform_scope(platform: Platform) -> Scope:
    paths = platform_groups(platform.name)
    realm = realm_groups()
    return Scope(
        platform=platform,
        url_names="platform_users",
        url_args=[platform.name],
        groups=[
            GroupSpec(
                "platform", "Whole platform (BinderHub and JupyterHub)", "Add to whole platform", paths["platform"]
            ),
            GroupSpec("binderhub", "BinderHub only", "Add to BinderHub only", paths["binderhub"]),
            GroupSpec("jupyterhub", "JupyterHub only", "Add to JupyterHub only", paths["jupyterhub"]),
            GroupSpec("platform-users", "Platform users (every platform)", "", realm["platform-users"], managed=False),
            GroupSpec("admins", "Console admins (everything)", "", realm["admins"], managed=False),
        ],
    )


def realm_scope() -> Scope:
    realm = realm_groups()
    return Scope(
        url_names="access",
        groups=[
            GroupSpec("admins", "Console admins (everything)", "Add to console admins", realm["admins"]),
            GroupSpec(
                "platform-users", "Platform users (every platform)", "Add to platform users", realm["platform-users"]
            ),
        ],
    )


# --- Reading Keycloak ----------------------------------------------------------------------------


def load_groups(scope: Scope, request: HttpRequest) -> tuple[list[GroupView], str]:
    """A page of members of each group (page offsets from `first-<key>`), and Keycloak's error if any.

    Stops at the first Unavailable: every further call would wait for the same timeout. And stops
    once the page has waited KEYCLOAK_TIMEOUT_SECONDS in all: a Keycloak that answers each call just
    within the timeout would otherwise hold the page for ten of them.
    """
    directory = keycloak.get_directory()
    deadline = time.monotonic() + settings.KEYCLOAK_TIMEOUT_SECONDS
    views = []
    for spec in scope.groups:
        if time.monotonic() > deadline:
            return [], (
                f"Keycloak is answering too slowly: reading the groups took over "
                f"{settings.KEYCLOAK_TIMEOUT_SECONDS}s, so the page stopped waiting."
            )
        view = GroupView(spec)
        try:
            view.page = directory.members(spec.path, offset(request, f"first-{spec.key}"), MEMBERS_PAGE_SIZE)
        except NotFound as exc:
            view.missing = str(exc)
        except ServiceError as exc:
            return [], str(exc)
        views.append(view)
    return views, ""


@dataclass(frozen=True)
class Reach:
    """One user in the combined view: the groups they are listed in and the services those give."""

    user: DirectoryUser
    via: tuple[str, ...]
    services: tuple[str, ...]


def combined_reach(platform: Platform, views: list[GroupView]) -> list[Reach]:
    """Who can reach what, over the members listed on the page."""
    paths: dict[str, set[str]] = {}
    users: dict[str, DirectoryUser] = {}
    for view in views:
        for user in view.page.users if view.page else ():
            users[user.id] = user
            paths.setdefault(user.id, set()).add(view.spec.path)
    rows = []
    for user_id, user in sorted(users.items(), key=lambda item: item[1].username):
        reached = services_reached(paths[user_id], platform.name)
        rows.append(Reach(user, tuple(sorted(paths[user_id])), tuple(s for s in SERVICES if s in reached)))
    return rows


def offset(request: HttpRequest, name: str) -> int:
    try:
        return max(int(request.GET.get(name, 0)), 0)
    except ValueError:
        return 0


def groups_context(request: HttpRequest, scope: Scope, notice: str = "", error: str = "", load: bool = True) -> dict:
    """What the live part of an access page shows (the `_access_groups.html` fragment).

    Without Keycloak's answer (not asked, or it failed) the fragment asks again by itself every few
    seconds, and stops once it shows the members.
    """
    views, keycloak_error = load_groups(scope, request) if load else ([], "")
    audit = AuditEvent.objects.filter(scope.audit_filter()).select_related("actor")[:AUDIT_LOG_LENGTH]
    ctx = {
        "scope": scope,
        "platform": scope.platform,
        "groups": views,
        "managed": scope.managed(),
        "keycloak_error": keycloak_error,
        "notice": notice,
        "error": error,
        "audit": audit,
        "services": SERVICE_LABELS,
        "urls": scope.urls(),
        "poll": bool(keycloak_error) or not load,
    }
    if scope.platform and views:
        ctx["reach"] = combined_reach(scope.platform, views)
        ctx["reach_partial"] = any(view.page and view.page.has_more for view in views)
    return ctx


def search_context(request: HttpRequest, scope: Scope, keycloak_failed: bool = False) -> dict:
    """The search box's results: one call to Keycloak, or none when nothing was asked.

    None either when Keycloak already failed to answer in this request (`keycloak_failed`): asking
    again would hold the page for a second timeout.
    """
    text = request.GET.get("q", "").strip()[:100]
    ctx = {"q": text, "managed": scope.managed(), "urls": scope.urls(), "results": None, "search_error": ""}
    if "q" not in request.GET:
        return ctx
    if keycloak_failed:
        ctx["search_error"] = (
            "Not searched: Keycloak did not answer for the members (see below). Search again once it answers."
        )
        return ctx
    first = offset(request, "first")
    try:
        ctx["results"] = keycloak.get_directory().search_users(text, first, SEARCH_PAGE_SIZE)
    except ServiceError as exc:
        ctx["search_error"] = str(exc)
        return ctx
    page = ctx["results"]
    for name, target in (("next_query", page.next_first), ("previous_query", page.previous_first)):
        if target is not None:
            ctx[name] = urlencode({"q": text, "first": target})
    return ctx


def current_group_paths(user: AbstractBaseUser) -> frozenset[str]:
    """The signed-in user's group paths as Keycloak has them now (two admin API calls).

    Raises NotFound when the user no longer exists or is disabled in Keycloak, Unavailable when
    Keycloak cannot be asked.
    """
    directory = keycloak.get_directory()
    found = directory.find_user(user.get_username())
    if found is None:
        raise NotFound("Your account no longer exists in Keycloak.")
    if not found.enabled:
        raise NotFound("Your Keycloak account is disabled.")
    return directory.user_group_paths(found.id)


# --- Pages ---------------------------------------------------------------------------------------


def admin_platform_or_404(request: HttpRequest, name: str) -> Platform:
    require_console_admin(request.user, "manage who may use platforms")
    return get_object_or_404(Platform.objects.select_related("cluster"), name=name)


def access_page(request: HttpRequest, scope: Scope, template: str) -> HttpResponse:
    groups = groups_context(request, scope)
    if request.htmx and request.htmx.target == "access-groups":
        # The live part asking again by itself: a 200, so that htmx swaps it in, error or not.
        return render(request, "platforms/_access_groups.html", groups)
    ctx = groups | search_context(request, scope, keycloak_failed=bool(groups["keycloak_error"]))
    # Keycloak's answer is the page: without it there is nothing true to show.
    status = 503 if ctx["keycloak_error"] else 200
    return render(request, template, ctx, status=status)


@login_required
@require_GET
def platform_users(request: HttpRequest, name: str) -> HttpResponse:
    """Who may reach the platform's services: its groups' members, the combined view, search, audit log."""
    platform = admin_platform_or_404(request, name)
    return access_page(request, platform_scope(platform), "platforms/platform_users.html")


@login_required
@require_GET
def realm_access(request: HttpRequest) -> HttpResponse:
    """The realm-wide groups: console admins and platform users (who reach every platform)."""
    require_console_admin(request.user, "manage console admins and platform users")
    return access_page(request, realm_scope(), "platforms/realm_access.html")


def search(request: HttpRequest, scope: Scope) -> HttpResponse:
    if not request.htmx:
        # Without JavaScript the search form goes to the page itself; this keeps old links working.
        return redirect(f"{scope.url()}?{request.GET.urlencode()}")
    return render(request, "platforms/_user_search.html", search_context(request, scope))


@login_required
@require_GET
def platform_users_search(request: HttpRequest, name: str) -> HttpResponse:
    """Search results (a fragment) with a button per group to add each user."""
    return search(request, platform_scope(admin_platform_or_404(request, name)))


@login_required
@require_GET
def realm_access_search(request: HttpRequest) -> HttpResponse:
    require_console_admin(request.user, "manage console admins and platform users")
    return search(request, realm_scope())


# --- Changes -------------------------------------------------------------------------------------


def change_membership(request: HttpRequest, scope: Scope, add: bool) -> HttpResponse:
    """Add a user to, or remove one from, a group this page manages: one direct change in Keycloak.

    htmx gets the re-read live part of the page; a plain form post is redirected back to the page.
    """
    spec = scope.managed().get(request.POST.get("group", ""))
    user_id = request.POST.get("user_id", "")
    action = "access.add" if add else "access.remove"
    notice = error = ""
    unavailable = False
    directory = keycloak.get_directory()
    try:
        if spec is None:
            raise NotFound("That group is not managed on this page.")
        if not add and spec.path == settings.ADMIN_GROUP:
            refuse_own_admin_removal(request, directory.get_user(user_id))
        user = directory.add_member(spec.path, user_id) if add else directory.remove_member(spec.path, user_id)
    except OutcomeUnknown as exc:
        # Keycloak may carry the change out all the same: record the attempt, and let the page
        # show what Keycloak has once it answers. The user's local mirror follows at their next session check.
        AuditEvent.record(request.user, f"{action}-unknown", spec.path, str(exc))
        error = f"{exc} The members are shown as Keycloak has them as soon as it answers."
        unavailable = True
    except ServiceError as exc:
        error = str(exc)
        unavailable = isinstance(exc, Unavailable)
    else:
        verb = "added to" if add else "removed from"
        AuditEvent.record(request.user, action, spec.path, describe(user))
        mirror_membership(user.username, spec.path, member=add)
        notice = f"{user.username} {verb} {spec.path}."
    if request.htmx:
        # After Keycloak failed to answer, do not wait for it again just to redraw the page.
        ctx = groups_context(request, scope, notice=notice, error=error, load=not unavailable)
        return render(request, "platforms/_access_groups.html", ctx)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect(scope.url())


def refuse_own_admin_removal(request: HttpRequest, target: DirectoryUser) -> None:
    # Removing oneself could leave the console with no admin at all; another admin must do it.
    if target.username == request.user.get_username():
        raise Conflict("You cannot remove yourself from the console admins; ask another admin.")


def describe(user: DirectoryUser) -> str:
    return f"{user.username} <{user.email}>" if user.email else user.username


@login_required
@require_POST
def platform_users_add(request: HttpRequest, name: str) -> HttpResponse:
    return change_membership(request, platform_scope(admin_platform_or_404(request, name)), add=True)


@login_required
@require_POST
def platform_users_remove(request: HttpRequest, name: str) -> HttpResponse:
    return change_membership(request, platform_scope(admin_platform_or_404(request, name)), add=False)


@login_required
@require_POST
def realm_access_add(request: HttpRequest) -> HttpResponse:
    require_console_admin(request.user, "manage console admins and platform users")
    return change_membership(request, realm_scope(), add=True)


@login_required
@require_POST
def realm_access_remove(request: HttpRequest) -> HttpResponse:
    require_console_admin(request.user, "manage console admins and platform users")
    return change_membership(request, realm_scope(), add=False)


@login_required
@require_POST
def platform_users_repair(request: HttpRequest, name: str) -> HttpResponse:
    """Have the worker re-ensure the platform's groups and OIDC client (after a removal by hand)."""
    platform = admin_platform_or_404(request, name)
    if platform.status == Platform.Status.UNINSTALLING:
        messages.error(request, f"{platform.name} is being deleted; its groups are not repaired.")
    else:
        with transaction.atomic():
            tasks.enqueue_access_repair(platform, request.user)
        messages.success(request, "Repair of access requested: the audit log shows when it is done.")
    return redirect("platform_users", platform.name)


@login_required
@require_POST
def realm_access_repair(request: HttpRequest) -> HttpResponse:
    """Have the worker re-ensure the realm-wide groups."""
    require_console_admin(request.user, "manage console admins and platform users")
    with transaction.atomic():
        tasks.enqueue_access_repair(None, request.user)
    messages.success(request, "Repair of the realm groups requested: the audit log shows when it is done.")
    return redirect("access")
