"""Fixtures shared by every test: users in each role and signed-in clients."""

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client


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
