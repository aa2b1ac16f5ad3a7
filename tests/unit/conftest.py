"""Unit tests never reach Keycloak (every test gets the in-memory directory), and those that run the
worker's code ask for the in-memory cluster, Helm and queue here."""

import pytest

from platforms import tasks
from platforms.services import helm, keycloak, kube
from tests.fakes import FakeDeployKube, FakeDirectory, FakeHelm


@pytest.fixture(autouse=True)
def directory(monkeypatch) -> FakeDirectory:
    """The in-memory Keycloak directory, with the demo users alice (admin) and bob (platform user)."""
    fake = FakeDirectory()
    fake.add_user("alice", ("/admins",), first_name="Alice", last_name="Admin")
    fake.add_user("bob", ("/platform-users",), first_name="Bob", last_name="User")
    monkeypatch.setattr(keycloak, "get_directory", lambda: fake)
    return fake


@pytest.fixture
def fake_cluster(monkeypatch) -> FakeDeployKube:
    """The in-memory cluster the worker's code reads (releases, NodePorts, service links)."""
    fake = FakeDeployKube()
    monkeypatch.setattr(kube, "get_kube", lambda: fake)
    return fake


@pytest.fixture
def fake_helm(monkeypatch, fake_cluster) -> FakeHelm:
    """The in-memory Helm, keeping its releases on fake_cluster."""
    fake = FakeHelm(fake_cluster.cluster)
    monkeypatch.setattr(helm, "get_helm", lambda: fake)
    return fake


@pytest.fixture
def queued(monkeypatch) -> list[tuple]:
    """Tasks handed to the broker (each call's positional arguments: the task's name, then its own)."""
    calls: list[tuple] = []
    monkeypatch.setattr(tasks, "async_task", lambda *args, **kwargs: calls.append(args))
    return calls


@pytest.fixture
def enqueued(monkeypatch) -> list[int]:
    """Operations handed to the worker (captured instead of queued)."""
    handed: list[int] = []
    monkeypatch.setattr(tasks, "enqueue_operation", handed.append)
    return handed
