"""Fixtures shared by every test: users in each role and signed-in clients."""

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

# The real local stack's fixtures (devstack, kubeconfig_text, real_services, local_cluster, ...).
pytest_plugins = ["tests.stack_fixtures"]


def make_user(username: str, groups: list[str], admin: bool = False) -> User:
    user = User.objects.create_user(username=username, email=f"{username}@example.org", is_staff=admin)
    user.groups.set([Group.objects.get_or_create(name=path)[0] for path in groups])
    return user


@pytest.fixture
def admin_user(db) -> User:
    return make_user("alice", ["/admins"], admin=True)


@pytest.fixture
def member_user(db) -> User:
    return make_user("bob", ["/platform-users"])


@pytest.fixture
def outsider_user(db) -> User:
    return make_user("eve", [])


@pytest.fixture
def admin_client(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def member_client(member_user) -> Client:
    client = Client()
    client.force_login(member_user)
    return client


@pytest.fixture
def fake_kube(monkeypatch):
    """Replace the Kubernetes service with an in-memory fake that reports v1.34.4."""
    from platforms.services import kube
    from tests.fakes import FakeKube

    fake = FakeKube()
    monkeypatch.setattr(kube, "get_kube", lambda: fake)
    return fake


@pytest.fixture
def stub_app_versions(monkeypatch):
    """Offer a fixed list of app versions instead of reading the chart repository."""
    from platforms.services import charts

    versions = ["0.2.0", "0.1.0"]
    monkeypatch.setattr(charts, "app_versions", lambda refresh=False: list(versions))
    return versions


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:16443", insecure-skip-tls-verify: true}
users:
- name: u1
  user: {token: secret-token}
contexts:
- name: ctx-a
  context: {cluster: c1, user: u1}
- name: ctx-b
  context: {cluster: c1, user: u1}
current-context: ctx-a
"""


@pytest.fixture
def cluster(db, admin_user):
    from platforms.models import Cluster

    cluster = Cluster(name="prod", created_by=admin_user, server_version="v1.34.4")
    cluster.kubeconfig = KUBECONFIG
    cluster.save()
    return cluster


@pytest.fixture
def platform(cluster, admin_user):
    from platforms.models import Platform

    return Platform.objects.create(
        name="demo", cluster=cluster, app_version="0.1.0", created_by=admin_user, updated_by=admin_user
    )


@pytest.fixture
def outsider_client(outsider_user) -> Client:
    client = Client()
    client.force_login(outsider_user)
    return client


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache (rate limits and cached app versions live there)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
