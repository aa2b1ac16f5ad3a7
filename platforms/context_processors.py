"""Template context shared by every page: who is signed in and whether they are an admin."""

from django.http import HttpRequest

from platforms.access_rules import is_console_admin


def console(request: HttpRequest) -> dict:
    """Add `is_console_admin` for the base layout."""
    return {"is_console_admin": is_console_admin(request.user)}
