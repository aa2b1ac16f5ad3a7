"""The Users page of a platform and the realm's Access page, over the in-memory Keycloak directory."""

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from platforms import tasks
from platforms.access_rules import platform_groups
from platforms.models import AuditEvent
from platforms.services.errors import OutcomeUnknown, Unavailable
from platforms.views import access as access_views
from tests.conftest import make_user

HTMX = {"HX-Request": "true"}
# What the live part of a page sends when it asks again by itself.
POLL = HTMX | {"HX-Target": "access-groups"}


def users_url(action: str = "", name: str = "demo") -> str:
    return reverse(f"platform_users_{action}" if action else "platform_users", args=[name])


def access_url(action: str = "") -> str:
    return reverse(f"access_{action}" if action else "access")


@pytest.fixture(autouse=True)
def demo_groups(directory):
    """The groups a launch of the platform demo creates."""
    directory.ensure_groups(list(platform_groups("demo").values()))


@pytest.fixture
def carol(directory):
    return directory.add_user("carol", ("/platforms/demo/binderhub",), first_name="Carol", last_name="Reader")


# --- Who may open the pages ----------------------------------------------------------------------


def test_anonymous_is_sent_to_sign_in(platform):
    for url in (users_url(), access_url()):
        assert Client().get(url)["Location"].startswith(reverse("oidc_authentication_init"))


def test_platform_users_and_outsiders_get_403_with_a_reason(platform, member_client, outsider_client):
    for client in (member_client, outsider_client):
        for url in (users_url(), access_url(), users_url("search") + "?q=a"):
            response = client.get(url)
            assert response.status_code == 403
            assert "Only console admins can" in response.content.decode()
        assert client.post(users_url("add"), {"group": "platform", "user_id": "x"}).status_code == 403
        assert client.post(access_url("remove"), {"group": "admins", "user_id": "x"}).status_code == 403


def test_users_page_of_a_missing_platform_is_404(admin_client, db):
    assert admin_client.get(users_url(name="nope")).status_code == 404


def test_admin_sees_users_link_and_access_nav(admin_client, member_client, platform):
    body = admin_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    assert f'href="{users_url()}"' in body
    assert f'href="{access_url()}"' in body
    other = member_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    assert users_url() not in other
    assert access_url() not in other


# --- What the Users page shows -------------------------------------------------------------------


def test_users_page_shows_each_group_and_who_reaches_what(admin_client, platform, directory, carol):
    directory.add_user("dave", ("/platforms/demo",))
    response = admin_client.get(users_url())
    body = response.content.decode()
    assert response.status_code == 200
    for key, user in [("binderhub", "carol"), ("platform", "dave"), ("platform-users", "bob"), ("admins", "alice")]:
        assert f'data-testid="member-{key}-{user}"' in body
    assert 'data-testid="remove-binderhub-carol"' in body
    assert 'data-testid="remove-admins-alice"' not in body  # realm groups are managed on the Access page
    assert 'hx-confirm="Remove carol from /platforms/demo/binderhub?"' in body
    reach = body.split('data-testid="reach"')[1]
    assert "<td>carol</td>\n        <td>yes</td><td>—</td>" in reach
    assert "<td>dave</td>\n        <td>yes</td><td>yes</td>" in reach
    assert "<td>bob</td>\n        <td>yes</td><td>yes</td>" in reach


@pytest.mark.parametrize("members", [10, 500])
def test_users_page_makes_the_same_few_keycloak_calls_whatever_the_member_count(
    admin_client, platform, directory, members
):
    for i in range(members):
        directory.add_user(f"user{i:03}", ("/platforms/demo", "/platforms/demo/jupyterhub", "/platform-users"))
    directory.calls.clear()
    response = admin_client.get(users_url())
    assert response.status_code == 200
    # Two calls per group shown (find it, read a page of its members): 5 groups.
    assert len(directory.calls) == 10
    body = response.content.decode()
    if members == 500:
        assert f'href="{users_url()}?first-platform=50"' in body
        assert "Large groups are listed a page at a time" in body


def test_members_are_paged(admin_client, platform, directory):
    for i in range(60):
        directory.add_user(f"user{i:03}", ("/platforms/demo",))
    body = admin_client.get(users_url() + "?first-platform=50").content.decode()
    assert 'data-testid="member-platform-user050"' in body
    assert 'data-testid="member-platform-user049"' not in body
    assert "Members 51–60." in body


def test_group_removed_by_hand_is_shown_with_the_repair_hint(admin_client, platform, directory):
    directory.remove_group("/platforms/demo/jupyterhub")
    response = admin_client.get(users_url())
    body = response.content.decode()
    assert response.status_code == 200
    assert "The group /platforms/demo/jupyterhub does not exist in Keycloak" in body
    assert "Repair access" in body


def test_keycloak_down_gives_a_clear_503_page_not_a_500(admin_client, platform, directory):
    directory.calls.clear()
    directory.error = Unavailable("Keycloak did not answer in time to read group /platforms/demo (timeout 2s).")
    response = admin_client.get(users_url())
    assert response.status_code == 503
    body = response.content.decode()
    assert "Keycloak did not answer in time" in body
    assert "The members are not shown until Keycloak answers" in body
    assert len(directory.calls) == 1  # no second wait once Keycloak did not answer


def test_a_keycloak_slow_on_every_call_holds_the_page_one_timeout_not_ten(
    admin_client, platform, directory, settings, monkeypatch
):
    settings.KEYCLOAK_TIMEOUT_SECONDS = 10
    clock = iter(range(0, 1000, 4))  # each reading of the clock: four seconds later
    monkeypatch.setattr(access_views, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    directory.calls.clear()
    response = admin_client.get(users_url())
    assert response.status_code == 503
    assert "Keycloak is answering too slowly: reading the groups took over 10s" in response.content.decode()
    assert directory.calls.count("group_members") == 2  # read at 4 s and 8 s; at 12 s the page gave up


def test_audit_log_of_the_platform_is_on_the_page_in_words(admin_client, admin_user, platform):
    AuditEvent.record(admin_user, "platform.launch", "demo", "version 0.1.0")
    AuditEvent.record(admin_user, "access.add", "/platforms/demo/binderhub", "carol")
    AuditEvent.record(admin_user, "access.add", "/platforms/demo-2", "zed")
    AuditEvent.record(admin_user, "platform.frobnicate", "demo")
    body = admin_client.get(users_url()).content.decode()
    log = body.split('data-testid="audit-log"')[1]
    assert "<td>Launch requested</td>" in log and "<td>Added to group</td>" in log and "carol" in log
    assert "platform.launch" not in log and "access.add" not in log
    assert "<td>platform.frobnicate</td>" in log  # a code without words still reads as itself
    assert "zed" not in log


# --- Search --------------------------------------------------------------------------------------


def test_search_over_htmx_is_a_fragment_with_add_buttons_per_group(admin_client, platform, carol):
    response = admin_client.get(users_url("search"), {"q": "reader"}, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    for key, label in [
        ("platform", "Add to whole platform"),
        ("binderhub", "Add to BinderHub only"),
        ("jupyterhub", "Add to JupyterHub only"),
    ]:
        assert f'data-testid="add-{key}-carol">{label}</button>' in body
    assert "add-admins-carol" not in body
    assert 'data-testid="found-bob"' not in body


def test_search_works_without_javascript_on_the_page_itself(admin_client, platform, carol):
    body = admin_client.get(users_url(), {"q": "carol@"}).content.decode()
    assert 'data-testid="found-carol"' in body
    plain = admin_client.get(users_url("search"), {"q": "carol"})
    assert plain.status_code == 302 and plain["Location"] == f"{users_url()}?q=carol"


def test_search_is_paged_with_one_call_per_page(admin_client, platform, directory):
    for i in range(45):
        directory.add_user(f"student{i:02}")
    directory.calls.clear()
    first = admin_client.get(users_url("search"), {"q": "student"}, headers=HTMX).content.decode()
    assert directory.calls == ["search_users"]
    assert "Users 1–20." in first and "q=student&amp;first=20" in first
    last = admin_client.get(users_url("search"), {"q": "student", "first": 40}, headers=HTMX).content.decode()
    assert 'data-testid="found-student44"' in last and "search-next" not in last


def test_search_finding_nobody_says_so(admin_client, platform):
    body = admin_client.get(users_url("search"), {"q": "nobody-here"}, headers=HTMX).content.decode()
    assert "No users match" in body


def test_search_without_javascript_does_not_wait_again_once_keycloak_did_not_answer(admin_client, platform, directory):
    directory.calls.clear()
    directory.error = Unavailable("Keycloak did not answer in time to read group /platforms/demo (timeout 2s).")
    response = admin_client.get(users_url(), {"q": "carol"})
    body = response.content.decode()
    assert response.status_code == 503
    assert len(directory.calls) == 1  # the groups' first call; the search is not sent to a silent Keycloak
    assert "Not searched: Keycloak did not answer for the members" in body
    assert 'value="carol"' in body  # the search box keeps the text, to search again


def test_search_while_keycloak_is_down_says_so(admin_client, platform, directory):
    directory.error = Unavailable("Keycloak did not answer in time to search users (timeout 2s).")
    body = admin_client.get(users_url("search"), {"q": "x"}, headers=HTMX).content.decode()
    assert 'data-testid="search-error"' in body and "did not answer" in body


# --- Add and remove ------------------------------------------------------------------------------


def test_adding_over_htmx_changes_keycloak_audits_and_returns_the_fragment(
    admin_client, admin_user, platform, directory, carol
):
    local = make_user("carol", [])
    response = admin_client.post(users_url("add"), {"group": "jupyterhub", "user_id": carol.id}, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert "carol added to /platforms/demo/jupyterhub." in body
    assert 'data-testid="member-jupyterhub-carol"' in body
    assert carol.id in directory.groups["/platforms/demo/jupyterhub"]
    event = AuditEvent.objects.get(action="access.add")
    assert (event.actor, event.target, event.detail) == (
        admin_user,
        "/platforms/demo/jupyterhub",
        "carol <carol@example.org>",
    )
    # The mirror follows at once, so carol's platform list shows demo without waiting for a re-check.
    assert "/platforms/demo/jupyterhub" in set(local.groups.values_list("name", flat=True))


def test_adding_without_javascript_redirects_back_with_a_message(admin_client, platform, directory, carol):
    response = admin_client.post(users_url("add"), {"group": "platform", "user_id": carol.id}, follow=True)
    assert response.redirect_chain == [(users_url(), 302)]
    assert "carol added to /platforms/demo." in response.content.decode()


def test_removing_over_htmx_ends_the_membership_and_audits(admin_client, platform, directory, carol):
    make_user("carol", ["/platforms/demo/binderhub"])
    response = admin_client.post(users_url("remove"), {"group": "binderhub", "user_id": carol.id}, headers=HTMX)
    assert "carol removed from /platforms/demo/binderhub." in response.content.decode()
    assert carol.id not in directory.groups["/platforms/demo/binderhub"]
    assert AuditEvent.objects.filter(action="access.remove", target="/platforms/demo/binderhub").exists()
    assert not User.objects.get(username="carol").groups.exists()


def test_user_deleted_meanwhile_gives_a_clear_message_and_changes_nothing(admin_client, platform, directory, carol):
    directory.delete_user(carol.id)
    response = admin_client.post(users_url("add"), {"group": "platform", "user_id": carol.id}, headers=HTMX)
    assert response.status_code == 200
    assert "That user no longer exists in Keycloak" in response.content.decode()
    assert not AuditEvent.objects.exists()


def test_adding_to_a_group_removed_by_hand_points_to_repair(admin_client, platform, directory, carol):
    directory.remove_group("/platforms/demo")
    response = admin_client.post(users_url("add"), {"group": "platform", "user_id": carol.id}, headers=HTMX)
    assert "does not exist in Keycloak (removed by hand?)" in response.content.decode()
    assert "Repair access" in response.content.decode()


def test_change_while_keycloak_is_down_says_so_without_waiting_again(admin_client, platform, directory, carol):
    directory.calls.clear()
    directory.error = Unavailable("Keycloak did not answer in time to read group /platforms/demo (timeout 2s).")
    response = admin_client.post(users_url("add"), {"group": "platform", "user_id": carol.id}, headers=HTMX)
    assert response.status_code == 200
    assert 'data-testid="access-error"' in response.content.decode()
    assert len(directory.calls) == 1
    assert not AuditEvent.objects.exists()


@pytest.fixture
def add_unanswered(directory, monkeypatch):
    """Keycloak carries the add out, but its answer never comes (a read timeout on the PUT)."""
    add = directory.add_member

    def add_then_time_out(path: str, user_id: str):
        user = add(path, user_id)
        raise OutcomeUnknown(
            f"Keycloak did not answer in time to add {user.username} to {path} (timeout 2s, ReadTimeout), "
            "but the request had been sent: the change may or may not have been made."
        )

    monkeypatch.setattr(directory, "add_member", add_then_time_out)


def test_add_whose_answer_never_came_is_audited_as_unknown_and_the_members_reload_until_keycloak_answers(
    admin_client, admin_user, platform, directory, carol, add_unanswered
):
    local = make_user("carol", [])
    response = admin_client.post(users_url("add"), {"group": "platform", "user_id": carol.id}, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert "may or may not have been made" in body and "nothing was changed" not in body
    assert "carol added to" not in body
    assert f'hx-get="{users_url()}" hx-trigger="every 3s"' in body  # the live part asks Keycloak again
    event = AuditEvent.objects.get()
    assert (event.actor, event.action, event.target) == (admin_user, "access.add-unknown", "/platforms/demo")
    assert "add carol to /platforms/demo" in event.detail
    assert not local.groups.exists()  # the mirror is not told what is not known

    again = admin_client.get(users_url(), headers=POLL).content.decode()
    assert "<html" not in again
    assert 'data-testid="member-platform-carol"' in again  # Keycloak's state: the add did happen
    assert "hx-trigger" not in again  # and the asking stops
    assert "Add sent, outcome unknown" in again


def test_add_whose_answer_never_came_without_javascript_says_so_on_the_page(
    admin_client, platform, carol, add_unanswered
):
    response = admin_client.post(users_url("add"), {"group": "platform", "user_id": carol.id}, follow=True)
    assert response.redirect_chain == [(users_url(), 302)]
    body = response.content.decode()
    assert "may or may not have been made" in body
    assert 'data-testid="member-platform-carol"' in body
    assert AuditEvent.objects.filter(action="access.add-unknown").exists()


def test_members_keep_asking_while_keycloak_is_down_and_stop_once_it_answers(admin_client, platform, directory):
    directory.error = Unavailable("Keycloak did not answer in time to read group /platforms/demo (timeout 2s).")
    page = admin_client.get(users_url())
    assert page.status_code == 503 and 'hx-trigger="every 3s"' in page.content.decode()
    still_down = admin_client.get(users_url(), headers=POLL)
    # A 200, so that htmx swaps it in: the error stays on the page, and so does the asking.
    assert still_down.status_code == 200
    assert 'data-testid="keycloak-error"' in still_down.content.decode()
    assert 'hx-trigger="every 3s"' in still_down.content.decode()
    directory.error = None
    back = admin_client.get(users_url(), headers=POLL).content.decode()
    assert 'data-testid="member-admins-alice"' in back and "hx-trigger" not in back


def test_groups_not_managed_on_the_page_are_refused(admin_client, platform, carol):
    response = admin_client.post(users_url("add"), {"group": "admins", "user_id": carol.id}, headers=HTMX)
    assert "not managed on this page" in response.content.decode()


def test_changes_need_post(admin_client, platform):
    assert admin_client.get(users_url("add")).status_code == 405


# --- The realm's Access page ---------------------------------------------------------------------


def test_access_page_manages_admins_and_platform_users(admin_client, directory, carol):
    body = admin_client.get(access_url()).content.decode()
    assert 'data-testid="member-admins-alice"' in body
    assert 'data-testid="member-platform-users-bob"' in body
    assert 'data-testid="reach"' not in body  # "who can reach what" is a platform's question
    response = admin_client.post(access_url("add"), {"group": "platform-users", "user_id": carol.id}, headers=HTMX)
    assert 'data-testid="member-platform-users-carol"' in response.content.decode()
    log = admin_client.get(access_url()).content.decode().split('data-testid="audit-log"')[1]
    assert "Added to group" in log and "/platform-users" in log


def test_admin_cannot_remove_themselves_from_the_admins(admin_client, directory):
    alice = directory.find_user("alice")
    response = admin_client.post(access_url("remove"), {"group": "admins", "user_id": alice.id}, headers=HTMX)
    assert "cannot remove yourself" in response.content.decode()
    assert alice.id in directory.groups["/admins"]


def test_admin_can_remove_another_admin(admin_client, directory):
    zoe = directory.add_user("zoe", ("/admins",))
    local = make_user("zoe", ["/admins"], admin=True)
    admin_client.post(access_url("remove"), {"group": "admins", "user_id": zoe.id}, headers=HTMX)
    assert zoe.id not in directory.groups["/admins"]
    local.refresh_from_db()
    assert not local.is_staff


# --- Repair --------------------------------------------------------------------------------------


def test_repair_is_a_described_button_in_its_own_form(admin_client, platform):
    for url, repair in [(users_url(), users_url("repair")), (access_url(), access_url("repair"))]:
        body = admin_client.get(url).content.decode()
        form = body.split('<h2 id="repair">Repair access</h2>')[1]
        assert f'<form method="post" action="{repair}"' in form
        assert 'aria-describedby="repair-help" data-testid="repair">Repair access</button>' in form
        assert 'id="repair-help">Re-creates' in form


def test_repair_is_requested_audited_and_run_by_the_worker(
    admin_client, admin_user, platform, directory, queued, django_capture_on_commit_callbacks
):
    directory.remove_group("/platforms/demo")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(users_url("repair"), follow=True)
    assert "Repair of access requested" in response.content.decode()
    assert queued == [("platforms.tasks.repair_access", platform.pk, admin_user.pk)]
    tasks.repair_access(platform.pk, admin_user.pk)
    for path in ("/platforms/demo", "/platforms/demo/binderhub", "/platforms/demo/jupyterhub"):
        assert path in directory.groups
    assert "binderhub-demo" in directory.clients
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["access.repair-requested", "access.repair"]
    body = admin_client.get(users_url()).content.decode()
    assert "does not exist in Keycloak" not in body


def test_failed_repair_is_recorded_for_the_page(admin_user, platform, directory):
    directory.error = Unavailable("Keycloak did not answer in time to read group /admins (timeout 2s).")
    tasks.repair_access(platform.pk, admin_user.pk)
    event = AuditEvent.objects.get()
    assert event.action == "access.repair-failed" and "did not answer" in event.detail


def test_repair_of_a_platform_being_deleted_is_refused(admin_client, platform, queued):
    platform.status = "uninstalling"
    platform.save()
    response = admin_client.post(users_url("repair"), follow=True)
    assert "is being deleted" in response.content.decode()
    assert queued == []


def test_realm_repair_re_creates_the_realm_groups(admin_client, admin_user, directory, queued):
    directory.remove_group("/platform-users")
    admin_client.post(access_url("repair"))
    tasks.repair_access(None, admin_user.pk)
    assert "/platform-users" in directory.groups
    assert AuditEvent.objects.filter(action="access.repair", target=tasks.REALM_TARGET).exists()
