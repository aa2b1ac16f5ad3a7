"""Pure rules about who may see or do what in the console."""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q

PLATFORM_USERS_GROUP = "/platform-users"
PLATFORM_GROUP_PREFIX = "/platforms/"
SERVICES = ("binderhub", "jupyterhub")


def is_console_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    """True for a signed-in, active member of the Keycloak admin group.

    The OIDC backend sets `is_staff` from the admin group at every sign-in (see platforms.auth).
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


def may_reach_service(user: AbstractBaseUser | AnonymousUser, platform_name: str, service: str) -> bool:
    """Admins, /platform-users, /platforms/<name> and /platforms/<name>/<service> reach a service."""
    if sees_every_platform(user):
        return True
    paths = group_paths(user)
    return platform_group(platform_name) in paths or platform_group(platform_name, service) in paths
