"""Pure rules about who may see or do what in the console, and the Keycloak groups they name."""

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q

PLATFORM_USERS_GROUP = "/platform-users"
PLATFORM_GROUP_PREFIX = "/platforms/"
SERVICES = ("binderhub", "jupyterhub")


def is_console_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    """True for a signed-in, active member of the Keycloak admin group.

    The OIDC backend sets `is_staff` from the admin group at every sign-in (see platforms.oidc_backend).
    """
    return bool(user.is_authenticated and user.is_active and getattr(user, "is_staff", False))


def require_console_admin(user: AbstractBaseUser | AnonymousUser, action: str) -> None:
    """Raise PermissionDenied, with a reason the 403 page shows, unless the user is a console admin."""
    if not is_console_admin(user):
        raise PermissionDenied(
            f"Only console admins can {action}. Ask an admin, or to be made one "
            f"(membership of the Keycloak group {settings.ADMIN_GROUP})."
        )


def platform_group(platform_name: str, service: str = "") -> str:
    """The Keycloak group path whose members may reach a platform (or one of its services)."""
    path = f"{PLATFORM_GROUP_PREFIX}{platform_name}"
    return f"{path}/{service}" if service else path


def group_paths(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    """The user's Keycloak group paths, as mirrored at sign-in (cached on the user object)."""
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_group_paths", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._group_paths = cached
    return cached


def sees_every_platform(user: AbstractBaseUser | AnonymousUser) -> bool:
    return is_console_admin(user) or PLATFORM_USERS_GROUP in group_paths(user)


def visible_platform_filter(user: AbstractBaseUser | AnonymousUser) -> Q:
    """A filter on Platform for the platforms a user may see in the console."""
    if not user.is_authenticated:
        return Q(pk__in=[])
    if sees_every_platform(user):
        return Q()
    names = {
        path[len(PLATFORM_GROUP_PREFIX) :].split("/", 1)[0]
        for path in group_paths(user)
        if path.startswith(PLATFORM_GROUP_PREFIX)
    }
    return Q(name__in=names)


def services_reached(paths: Iterable[str], platform_name: str) -> set[str]:
    """The services of a platform that members of these Keycloak groups may reach.

    Admins, /platform-users and /platforms/<name> reach every service; /platforms/<name>/<service>
    reaches that one. The deployed JupyterHub admits all of these groups (platforms.values.allowed_groups),
    the BinderHub subgroup too, because BinderHub starts its users' servers through JupyterHub.
    """
    paths = set(paths)
    if paths & {settings.ADMIN_GROUP, PLATFORM_USERS_GROUP, platform_group(platform_name)}:
        return set(SERVICES)
    return {service for service in SERVICES if platform_group(platform_name, service) in paths}


def platform_groups(platform_name: str) -> dict[str, str]:
    """The Keycloak groups of one platform, by the key the Users page uses for each."""
    return {"platform": platform_group(platform_name)} | {
        service: platform_group(platform_name, service) for service in SERVICES
    }


def realm_groups() -> dict[str, str]:
    """The realm-wide groups the Access page manages, by key."""
    return {"admins": settings.ADMIN_GROUP, "platform-users": PLATFORM_USERS_GROUP}
