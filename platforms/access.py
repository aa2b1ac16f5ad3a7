"""Pure rules about who may see or do what in the console."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def is_console_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    """True for a signed-in, active member of the Keycloak admin group.

    The OIDC backend sets `is_staff` from the admin group at every sign-in (see platforms.auth).
    """
    return bool(user.is_authenticated and user.is_active and getattr(user, "is_staff", False))
