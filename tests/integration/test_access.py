"""Access management against the real Keycloak of the local stack: groups, members, search, click-through, faults.

Keycloak keeps its realm in memory, so it is never restarted here: an outage is a SIGSTOP of its
process (always followed by SIGCONT), and every user or group a test makes is removed again.
"""

import contextlib
import dataclasses
import os
import signal
import time
import uuid
from unittest import mock

import pytest
import requests
from django.test import Client
from django.urls import reverse

from devstack import procs
from platforms import access_repair, deploy, provisioning, tasks
from platforms.access_rules import platform_groups
from platforms.models import AuditEvent, Operation, Platform, ServiceLink
from platforms.services import keycloak
from tests.conftest import make_user
from tests.integration import keycloak_admin
from tests.integration.test_oidc_login import sign_in

pytestmark = pytest.mark.integration
HTMX = {"HX-Request": "true"}


@pytest.fixture
def real_directory(devstack, settings):
    """The console's GroupDirectory against the local Keycloak, built fresh from the test's settings."""
    keycloak.get_directory.cache_clear()
    yield keycloak.get_directory
    keycloak.get_directory.cache_clear()


@pytest.fixture
def access_platform(local_cluster, admin_user, real_directory):
    """A platform row whose groups and client exist in Keycloak (as its install would make them)."""
    name = f"acc-{uuid.uuid4().hex[:6]}"
    platform = Platform.objects.create(
        name=name, cluster=local_cluster, app_version="0.1.0", created_by=admin_user, status="deployed"
    )
    provisioning.ensure_platform_access(deploy.values_input(platform))
    yield platform
    keycloak.get_directory.cache_clear()
    provisioning.remove_platform_access(name)


@pytest.fixture
def person():
    """A Keycloak user with a password, removed afterwards."""
    made = []

    def make(groups: list[str] = ()) -> tuple[str, str]:
        username = f"p-{uuid.uuid4().hex[:8]}"
        made.append(keycloak_admin.create_user(username, "pw-123456", groups=list(groups)))
        return username, made[-1]

    yield make
    for user_id in made:
        keycloak_admin.delete_user(user_id)


@contextlib.contextmanager
def keycloak_paused():
    """Freeze Keycloak: connections are accepted but never answered, like a hung server.

    The recorded pid is kc.sh's, which leads the process group its java child runs in: signal the group.
    """
    pid = procs.running_pid("keycloak")
    assert pid, "Keycloak of the local stack is not running"
    group = os.getpgid(pid)
    assert group == pid, "Keycloak does not lead its own process group; refusing to stop a group it shares"
    os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(group, signal.SIGCONT)
        wait_until_keycloak_answers()


def wait_until_keycloak_answers(timeout: float = 30) -> None:
    """Let Keycloak drain what queued up while it was frozen, before the next test asks it anything."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            keycloak_admin.admin_session()
        except requests.RequestException:
            time.sleep(0.2)
        else:
            return


@contextlib.contextmanager
def counting_admin_requests():
    """Count the HTTP requests made to Keycloak's admin API (token requests are not admin calls)."""
    seen: list[str] = []
    original = requests.Session.send

    def send(self, request, **kwargs):
        if "/admin/realms/" in request.url:
            seen.append(f"{request.method} {request.url}")
        return original(self, request, **kwargs)

    with mock.patch.object(requests.Session, "send", send):
        yield seen


def users_url(platform: Platform, action: str = "") -> str:
    return reverse(f"platform_users_{action}" if action else "platform_users", args=[platform.name])


# --- Lifecycle -----------------------------------------------------------------------------------


def test_launch_and_delete_create_and_remove_the_groups_and_client(
    local_cluster, admin_user, real_services, real_directory, kubeconfig_text, monkeypatch, settings
):
    from tests.integration.test_deploy import helm_cli, play_zenith_operator

    settings.NAMESPACE_DELETE_TIMEOUT_SECONDS = 60
    handed: list[int] = []
    monkeypatch.setattr(tasks, "enqueue_operation", handed.append)
    name = f"life-{uuid.uuid4().hex[:6]}"
    platform = Platform.objects.create(name=name, cluster=local_cluster, app_version="0.1.0", created_by=admin_user)
    paths = [f"/platforms/{name}", f"/platforms/{name}/binderhub", f"/platforms/{name}/jupyterhub"]
    try:
        tasks.run_operation(Operation.objects.request(platform, "install", admin_user).pk)
        platform.refresh_from_db()
        assert platform.status == Platform.Status.INSTALLING, platform.status_message
        assert all(keycloak_admin.group_exists(path) for path in paths)
        client = keycloak_admin.client(f"binderhub-{name}")
        assert client["secret"] == platform.secrets["oidc_client_secret"]
        assert client["publicClient"] is False and client["redirectUris"] == []

        urls = play_zenith_operator(kubeconfig_text, name)
        tasks.sync_links(platform.pk)
        platform.refresh_from_db()
        follow_up = platform.operations.filter(kind="upgrade").first()
        assert follow_up is not None
        tasks.run_operation(follow_up.pk)
        client = keycloak_admin.client(f"binderhub-{name}")
        assert sorted(client["redirectUris"]) == sorted(
            [
                f"{urls['jupyterhub']}/hub/oauth_callback",
                f"{urls['binderhub']}/_oidc/callback",
                f"{urls['jupyterhub']}/_oidc/callback",
            ]
        )

        Platform.objects.filter(pk=platform.pk).update(status="deployed")
        tasks.run_operation(Operation.objects.request(platform, "uninstall", admin_user).pk)
        assert not Platform.objects.filter(pk=platform.pk).exists()
        assert not any(keycloak_admin.group_exists(path) for path in paths)
        assert keycloak_admin.client(f"binderhub-{name}") is None
    finally:
        helm_cli(kubeconfig_text, "uninstall", name, "-n", name, check=False)
        provisioning.remove_platform_access(name)


def test_a_new_platforms_access_costs_five_admin_requests_and_an_unchanged_one_no_write(
    local_cluster, admin_user, real_directory
):
    name = f"cost-{uuid.uuid4().hex[:6]}"
    platform = Platform.objects.create(name=name, cluster=local_cluster, app_version="0.1.0", created_by=admin_user)
    spec = deploy.values_input(platform)
    try:
        with counting_admin_requests() as first:
            provisioning.ensure_platform_access(spec, likely_new=True)
        with counting_admin_requests() as again:
            provisioning.ensure_platform_access(spec)
        links = {"binderhub": "https://b.example.org", "jupyterhub": "https://j.example.org"}
        with counting_admin_requests() as new_links:
            provisioning.ensure_platform_access(dataclasses.replace(spec, links=links))
        redirects = keycloak_admin.client(f"binderhub-{name}")["redirectUris"]
    finally:
        provisioning.remove_platform_access(name)
    # A first install: the parent group found, then three group creates and the client's, none looked for first.
    assert [request.split()[0] for request in first] == ["GET", "POST", "POST", "POST", "POST"], first
    assert [request.split()[0] for request in again] == ["GET", "GET", "GET", "GET"], again
    assert [request.split()[0] for request in new_links] == ["GET", "GET", "GET", "GET", "PUT"], new_links
    assert sorted(redirects) == [
        "https://b.example.org/_oidc/callback",
        "https://j.example.org/_oidc/callback",
        "https://j.example.org/hub/oauth_callback",
    ]


def test_a_first_install_whose_groups_and_client_exist_already_finds_them_and_sets_the_secret(
    local_cluster, admin_user, real_directory
):
    """A retried first install, or a person who made them by hand: Keycloak refuses the creates, the
    console looks them up instead, keeps the groups (and their members) and sets the client's secret."""
    name = f"again-{uuid.uuid4().hex[:6]}"
    platform = Platform.objects.create(name=name, cluster=local_cluster, app_version="0.1.0", created_by=admin_user)
    spec = deploy.values_input(platform)
    try:
        provisioning.ensure_platform_access(dataclasses.replace(spec, oidc_client_secret="an-older-secret"))
        group_ids = {path: keycloak_admin.group_id(path) for path in platform_groups(name).values()}
        client_id = keycloak_admin.client(f"binderhub-{name}")["id"]
        provisioning.ensure_platform_access(spec, likely_new=True)
        assert {path: keycloak_admin.group_id(path) for path in group_ids} == group_ids
        client = keycloak_admin.client(f"binderhub-{name}")
        assert client["id"] == client_id and client["secret"] == spec.oidc_client_secret
    finally:
        provisioning.remove_platform_access(name)


# --- Members, search, and the pages' calls --------------------------------------------------------


def test_admin_adds_and_removes_a_member_through_the_users_page(admin_client, admin_user, access_platform, person):
    username, user_id = person()
    found = admin_client.get(users_url(access_platform, "search"), {"q": username}, headers=HTMX)
    assert f'data-testid="found-{username}"' in found.content.decode()
    path = f"/platforms/{access_platform.name}/binderhub"

    added = admin_client.post(
        users_url(access_platform, "add"), {"group": "binderhub", "user_id": user_id}, headers=HTMX
    )
    assert f"{username} added to {path}." in added.content.decode()
    assert keycloak_admin.group_member_names(path) == {username}
    page = admin_client.get(users_url(access_platform)).content.decode()
    assert f'data-testid="member-binderhub-{username}"' in page
    assert f'data-testid="reach-{username}"' in page

    removed = admin_client.post(
        users_url(access_platform, "remove"), {"group": "binderhub", "user_id": user_id}, headers=HTMX
    )
    assert f"{username} removed from {path}." in removed.content.decode()
    assert keycloak_admin.group_member_names(path) == set()
    events = AuditEvent.objects.filter(target=path).order_by("id")
    assert [(e.actor, e.action) for e in events] == [(admin_user, "access.add"), (admin_user, "access.remove")]


def test_realm_access_page_adds_to_platform_users(admin_client, real_directory, person):
    username, user_id = person()
    response = admin_client.post(reverse("access_add"), {"group": "platform-users", "user_id": user_id}, headers=HTMX)
    assert f'data-testid="member-platform-users-{username}"' in response.content.decode()
    assert username in keycloak_admin.group_member_names("/platform-users")


@pytest.fixture
def many_users(real_directory):
    prefix = f"srch{uuid.uuid4().hex[:5]}"
    ids = keycloak_admin.import_users(prefix, 45)
    yield prefix
    keycloak_admin.delete_users(ids)


def test_search_among_many_users_pages_by_username_email_and_name(admin_client, access_platform, many_users):
    url = users_url(access_platform, "search")
    first = admin_client.get(url, {"q": many_users}, headers=HTMX).content.decode()
    assert first.count('data-testid="found-') == 20
    assert f"q={many_users}&amp;first=20" in first
    last = admin_client.get(url, {"q": many_users, "first": 40}, headers=HTMX).content.decode()
    assert last.count('data-testid="found-') == 5 and "search-next" not in last
    by_email = admin_client.get(url, {"q": f"{many_users}-00007@example"}, headers=HTMX).content.decode()
    assert by_email.count('data-testid="found-') == 1
    by_first_name = admin_client.get(url, {"q": "Bench 44"}, headers=HTMX).content.decode()
    assert f'data-testid="found-{many_users}-00044"' in by_first_name
    # Without JavaScript, the page itself shows the results.
    plain = admin_client.get(users_url(access_platform), {"q": f"{many_users}-0001"}).content.decode()
    assert plain.count('data-testid="found-') == 10


@pytest.fixture
def crowded_platform(access_platform, local_cluster, admin_user):
    """access_platform with 10 members, and a second platform with 500."""
    small = keycloak_admin.import_users(f"few{uuid.uuid4().hex[:5]}", 10, [f"/platforms/{access_platform.name}"])
    big_platform = Platform.objects.create(
        name=f"big-{uuid.uuid4().hex[:6]}", cluster=local_cluster, app_version="0.1.0", created_by=admin_user
    )
    provisioning.ensure_platform_access(deploy.values_input(big_platform))
    path = f"/platforms/{big_platform.name}/jupyterhub"
    big = keycloak_admin.import_users(f"many{uuid.uuid4().hex[:5]}", 500, [path, f"/platforms/{big_platform.name}"])
    yield access_platform, big_platform
    keycloak_admin.delete_users(small + big)
    provisioning.remove_platform_access(big_platform.name)


def test_users_page_makes_the_same_bounded_admin_calls_with_10_and_500_members(admin_client, crowded_platform):
    counts = {}
    for platform in crowded_platform:
        with counting_admin_requests() as seen:
            response = admin_client.get(users_url(platform))
        assert response.status_code == 200
        counts[platform.name] = len(seen)
    small, big = crowded_platform
    assert counts[small.name] == counts[big.name] <= 10, counts
    body = admin_client.get(users_url(big)).content.decode()
    assert body.count('data-testid="member-jupyterhub-') == 50
    assert 'data-testid="more-jupyterhub"' in body
    with counting_admin_requests() as seen:
        admin_client.get(users_url(big, "search"), {"q": "many"}, headers=HTMX)
    assert len(seen) == 1


# --- The click-through follows the Users page ------------------------------------------------------


@pytest.fixture
def console(devstack, live_server) -> str:
    return live_server.url


def test_service_subgroup_member_clicks_through_to_that_service_only_and_loses_it_when_removed(
    console, access_platform, person, admin_user
):
    name = access_platform.name
    for service in ("binderhub", "jupyterhub"):
        ServiceLink.objects.create(
            platform=access_platform, name=service, url=f"https://{service}-{name}.example", ready=True
        )
    username, user_id = person([f"/platforms/{name}/binderhub"])
    browser, landing = sign_in(console, username, "pw-123456")
    assert f'href="/platforms/{name}/"' in landing.text  # members see the platform in their list

    def click(service: str) -> requests.Response:
        return browser.get(f"{console}/platforms/{name}/services/{service}/", allow_redirects=False, timeout=30)

    to_binderhub = click("binderhub")
    assert (to_binderhub.status_code, to_binderhub.headers["Location"]) == (302, f"https://binderhub-{name}.example")
    assert click("jupyterhub").status_code == 403

    admin = Client()
    admin.force_login(admin_user)
    admin.post(users_url(access_platform, "remove"), {"group": "binderhub", "user_id": user_id}, headers=HTMX)
    # At the very next request, not at the next sign-in; in no group of the platform now, they are
    # answered as for a platform that does not exist.
    assert click("binderhub").status_code == 404

    admin.post(users_url(access_platform, "add"), {"group": "jupyterhub", "user_id": user_id}, headers=HTMX)
    assert click("jupyterhub").status_code == 302


def test_platform_list_follows_a_change_made_in_keycloak_at_the_next_session_check(
    console, access_platform, person, settings
):
    name = access_platform.name
    username, user_id = person()
    browser, landing = sign_in(console, username, "pw-123456")
    assert f'href="/platforms/{name}/"' not in landing.text
    keycloak_admin.add_to_group(user_id, f"/platforms/{name}/jupyterhub")
    # Within the re-check interval the console has not asked Keycloak again.
    assert f'href="/platforms/{name}/"' not in browser.get(f"{console}/", timeout=30).text
    settings.OIDC_RECHECK_SECONDS = 0
    assert f'href="/platforms/{name}/"' in browser.get(f"{console}/", timeout=30).text


# --- Faults ----------------------------------------------------------------------------------------


def test_keycloak_hung_gives_clear_messages_and_repair_works_once_it_is_back(
    admin_client, access_platform, person, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from django_q.conf import Conf

    username, user_id = person([f"/platforms/{access_platform.name}"])
    member = Client()
    member.force_login(make_user(username, [f"/platforms/{access_platform.name}"]))
    settings.KEYCLOAK_TIMEOUT_SECONDS = 2
    keycloak.get_directory.cache_clear()
    with keycloak_paused():
        started = time.monotonic()
        page = admin_client.get(users_url(access_platform))
        took = time.monotonic() - started
        add = admin_client.post(
            users_url(access_platform, "add"), {"group": "platform", "user_id": user_id}, headers=HTMX
        )
        click = member.get(reverse("service_redirect", args=[access_platform.name, "binderhub"]))
    assert page.status_code == 503
    assert "Keycloak did not answer in time" in page.content.decode()
    assert took < 2 * settings.KEYCLOAK_TIMEOUT_SECONDS + 2  # one timeout, not one per group or retry
    assert add.status_code == 200 and 'data-testid="access-error"' in add.content.decode()
    assert "nothing was changed there" in add.content.decode()
    assert click.status_code == 503 and "Access cannot be checked right now" in click.content.decode()
    assert not AuditEvent.objects.filter(action="access.add").exists()

    # Back, but a group was removed by hand meanwhile: the page says so, and repair brings it back.
    path = f"/platforms/{access_platform.name}/jupyterhub"
    keycloak_admin.delete_group(path)
    assert (
        "does not exist in Keycloak (removed by hand?)" in admin_client.get(users_url(access_platform)).content.decode()
    )
    monkeypatch.setattr(Conf, "SYNC", True)  # django-q2 runs the task in this process
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(users_url(access_platform, "repair"))
    assert keycloak_admin.group_exists(path)
    assert AuditEvent.objects.filter(action="access.repair", target=f"/platforms/{access_platform.name}").exists()
    assert "does not exist in Keycloak" not in admin_client.get(users_url(access_platform)).content.decode()


def test_search_without_javascript_waits_one_timeout_when_keycloak_hangs(admin_client, access_platform, settings):
    settings.KEYCLOAK_TIMEOUT_SECONDS = 2
    keycloak.get_directory.cache_clear()
    with keycloak_paused():
        started = time.monotonic()
        page = admin_client.get(users_url(access_platform), {"q": "bob"})
        took = time.monotonic() - started
    assert page.status_code == 503
    assert "Not searched: Keycloak did not answer" in page.content.decode()
    assert took < 1.5 * settings.KEYCLOAK_TIMEOUT_SECONDS + 0.5, took  # the groups' timeout, not a second one


def test_add_whose_answer_never_came_is_audited_as_unknown_and_the_page_shows_it_once_keycloak_answers(
    admin_client, admin_user, access_platform, person, settings, monkeypatch
):
    """The issue's case: Keycloak took the add, froze before answering, and carried it out later."""
    username, user_id = person()
    path = f"/platforms/{access_platform.name}"
    settings.KEYCLOAK_TIMEOUT_SECONDS = 2
    keycloak.get_directory.cache_clear()
    admin_api = keycloak.get_directory()._admin
    frozen = contextlib.ExitStack()
    add = admin_api.group_user_add

    def add_to_a_keycloak_freezing_now(*args):
        frozen.enter_context(keycloak_paused())  # the reads before went through; the PUT is never answered
        return add(*args)

    monkeypatch.setattr(admin_api, "group_user_add", add_to_a_keycloak_freezing_now)
    with frozen:
        response = admin_client.post(
            users_url(access_platform, "add"), {"group": "platform", "user_id": user_id}, headers=HTMX
        )
    body = response.content.decode()
    assert response.status_code == 200
    assert "may or may not have been made" in body and "nothing was changed" not in body
    assert 'hx-trigger="every 3s"' in body
    event = AuditEvent.objects.get(action="access.add-unknown")
    assert (event.actor, event.target) == (admin_user, path) and f"add {username} to {path}" in event.detail

    # Thawed, Keycloak carries out the add it had taken; the fragment's next asking shows it.
    deadline = time.monotonic() + 10
    while username not in keycloak_admin.group_member_names(path) and time.monotonic() < deadline:
        time.sleep(0.2)
    again = admin_client.get(users_url(access_platform), headers=HTMX | {"HX-Target": "access-groups"})
    assert f'data-testid="member-platform-{username}"' in again.content.decode()
    assert "hx-trigger" not in again.content.decode()


# --- Keycloak lost what the console made -------------------------------------------------------------


@pytest.fixture
def more_platforms(access_platform, local_cluster, admin_user):
    """Two more platforms with their access in Keycloak, removed again afterwards."""
    made = []
    for _ in range(2):
        platform = Platform.objects.create(
            name=f"more-{uuid.uuid4().hex[:6]}",
            cluster=local_cluster,
            app_version="0.1.0",
            created_by=admin_user,
            status="deployed",
        )
        provisioning.ensure_platform_access(deploy.values_input(platform))
        made.append(platform)
    yield made
    for platform in made:
        provisioning.remove_platform_access(platform.name)


def test_the_worker_re_creates_a_lost_group_and_client_in_calls_that_do_not_grow_with_platforms(
    access_platform, more_platforms
):
    name = access_platform.name
    with counting_admin_requests() as seen:
        assert access_repair.repair_lost_access(tasks.REALM_TARGET) == []
    calls_for_three = len(seen)
    Platform.objects.filter(pk__in=[platform.pk for platform in more_platforms]).delete()
    with counting_admin_requests() as seen:
        access_repair.repair_lost_access(tasks.REALM_TARGET)
    assert len(seen) == calls_for_three <= 7, seen

    # Lost as after a restore of an older realm: the service group and the client, removed by hand.
    keycloak_admin.delete_group(f"/platforms/{name}/jupyterhub")
    keycloak_admin.delete_client(f"binderhub-{name}")
    tasks.repair_lost_access()  # as reconcile runs it
    assert keycloak_admin.group_exists(f"/platforms/{name}/jupyterhub")
    assert keycloak_admin.client(f"binderhub-{name}")["secret"] == access_platform.secrets["oidc_client_secret"]
    event = AuditEvent.objects.get(action="access.auto-repair")
    assert (event.actor, event.target) == (None, f"/platforms/{name}")
    assert f"Keycloak had lost /platforms/{name}/jupyterhub, client binderhub-{name}." in event.detail


def test_user_deleted_meanwhile_gives_a_clear_message(admin_client, access_platform, person):
    username, user_id = person()
    found = admin_client.get(users_url(access_platform, "search"), {"q": username}, headers=HTMX)
    assert f'data-testid="found-{username}"' in found.content.decode()
    keycloak_admin.delete_user(user_id)
    response = admin_client.post(
        users_url(access_platform, "add"), {"group": "platform", "user_id": user_id}, headers=HTMX
    )
    assert response.status_code == 200
    assert "That user no longer exists in Keycloak" in response.content.decode()
    assert keycloak_admin.group_member_names(f"/platforms/{access_platform.name}") == set()
