"""Unit tests never reach Keycloak: every test gets the in-memory directory instead."""

import pytest

from platforms.services import keycloak
from tests.fakes import FakeDirectory


@pytest.fixture(autouse=True)
def directory(monkeypatch) -> FakeDirectory:
    """The in-memory Keycloak directory, with the demo users alice (admin) and bob (platform user)."""
    fake = FakeDirectory()
    fake.add_user("alice", ("/admins",), first_name="Alice", last_name="Admin")
    fake.add_user("bob", ("/platform-users",), first_name="Bob", last_name="User")
    monkeypatch.setattr(keycloak, "get_directory", lambda: fake)
    return fake
