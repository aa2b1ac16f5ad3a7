"""Live status polling, retry, and the click-through to a platform's services."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from platforms.models import Operation, Platform, ServiceLink
from platforms.services.errors import Unavailable
from tests.conftest import make_user


@pytest.fixture
def links(platform):
    ServiceLink.objects.create(platform=platform, name="binderhub", url="https://b.example", ready=True)
    ServiceLink.objects.create(platform=platform, name="jupyterhub", url="", ready=False)


def status(client: Client):
    return client.get(reverse("platform_status", args=["demo"]), headers={"HX-Request": "true"})


def test_status_fragment_keeps_polling_while_an_operation_runs(admin_client, admin_user, platform):
    Operation.objects.request(platform, "install", admin_user)
    response = status(admin_client)
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert 'hx-trigger="every 2s"' in body
    assert "Pending" in body


def test_status_fragment_stops_polling_with_286_when_final(admin_client, platform):
    Platform.objects.filter(pk=platform.pk).update(status="deployed")
    response = status(admin_client)
    assert response.status_code == 286
    assert "every 2s" not in response.content.decode()


def test_status_of_a_platform_waiting_for_links_asks_the_worker_to_look(
    admin_client, platform, queued, django_capture_on_commit_callbacks
):
    Platform.objects.filter(pk=platform.pk).update(status="installing")
    with django_capture_on_commit_callbacks(execute=True):
        status(admin_client)
        status(admin_client)  # within LINK_SYNC_MIN_INTERVAL: not asked again
    assert queued == [("platforms.tasks.sync_links", platform.pk)]


def test_status_of_a_removed_platform_redirects_to_the_list(admin_client):
    response = admin_client.get(reverse("platform_status", args=["gone"]), headers={"HX-Request": "true"})
    assert response.status_code == 286
    assert response["HX-Redirect"] == reverse("platform_list")


def test_status_is_hidden_from_outsiders(outsider_client, platform):
    assert status(outsider_client)["HX-Redirect"] == reverse("platform_list")


def test_operation_log_is_shown(admin_client, admin_user, platform):
    operation = Operation.objects.request(platform, "install", admin_user)
    Operation.objects.filter(pk=operation.pk).update(state="failed", error="Helm failed: boom")
    Platform.objects.filter(pk=platform.pk).update(status="failed", status_message="Install failed: Helm failed: boom")
    body = admin_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    assert "Helm failed: boom" in body
    assert reverse("platform_retry", args=["demo"]) in body


def test_retry_requests_the_failed_operation_again(admin_client, admin_user, platform):
    operation = Operation.objects.request(platform, "install", admin_user)
    Operation.objects.filter(pk=operation.pk).update(state="failed")
    Platform.objects.filter(pk=platform.pk).update(status="failed")
    response = admin_client.post(reverse("platform_retry", args=["demo"]))
    assert response.status_code == 302
    assert platform.operations.filter(state="queued", kind="install").exists()


def test_retry_of_a_healthy_platform_is_refused(admin_client, platform):
    Platform.objects.filter(pk=platform.pk).update(status="deployed")
    admin_client.post(reverse("platform_retry", args=["demo"]))
    assert not platform.operations.exists()


def test_non_admin_cannot_retry(member_client, platform):
    Platform.objects.filter(pk=platform.pk).update(status="failed")
    assert member_client.post(reverse("platform_retry", args=["demo"])).status_code == 403


def service_url(service: str = "binderhub") -> str:
    return reverse("service_redirect", args=["demo", service])


def test_anonymous_click_through_is_sent_to_sign_in(links):
    response = Client().get(service_url())
    assert response["Location"].startswith(reverse("oidc_authentication_init"))


def signed_in(directory, group: str) -> Client:
    """carol, signed in, and in the group both in Keycloak and as mirrored at sign-in."""
    directory.add_user("carol", (group,))
    client = Client()
    client.force_login(make_user("carol", [group], admin=group == "/admins"))
    return client


@pytest.mark.parametrize("group", ["/platforms/demo", "/platforms/demo/binderhub", "/platform-users", "/admins"])
def test_allowed_user_is_redirected_to_the_recorded_link(links, directory, group):
    response = signed_in(directory, group).get(service_url())
    assert (response.status_code, response["Location"]) == (302, "https://b.example")


def test_a_user_of_another_service_of_the_platform_gets_403_with_the_reason(links, directory):
    response = signed_in(directory, "/platforms/demo/jupyterhub").get(service_url())
    assert response.status_code == 403
    assert "not in a group that may use BinderHub of demo" in response.content.decode()


@pytest.mark.parametrize("group", ["/platforms/other", "/platforms/demo-2"])
def test_a_platform_the_user_may_not_see_answers_404_exactly_as_a_missing_one(links, directory, group):
    client = signed_in(directory, group)
    hidden = client.get(service_url())
    missing = client.get(reverse("service_redirect", args=["nosuch", "binderhub"]))
    assert hidden.status_code == missing.status_code == 404
    # The same page, but for the CSRF token, which is masked anew in every response.
    token = re.compile(rb'("x-csrftoken": "|name="csrfmiddlewaretoken" value=")[^"]+"')
    assert token.sub(b"", hidden.content) == token.sub(b"", missing.content)
    assert b"demo" not in hidden.content


@pytest.mark.parametrize(
    "url", ["https://b.example/path", "https://user@b.example", "https://b.example:8443", "javascript:alert(1)"]
)
def test_click_through_never_follows_a_recorded_link_of_another_shape(admin_client, links, url):
    ServiceLink.objects.filter(name="binderhub").update(url=url)
    response = admin_client.get(service_url())
    assert response.status_code == 503
    assert "Location" not in response.headers


def test_click_through_asks_keycloak_not_the_groups_mirrored_at_sign_in(links, directory):
    client = signed_in(directory, "/platforms/demo/binderhub")
    carol = directory.find_user("carol")
    directory.remove_member("/platforms/demo/binderhub", carol.id)
    response = client.get(service_url())
    assert response.status_code == 404
    # The mirror follows what was just checked, so the platform list agrees.
    assert reverse("platform_detail", args=["demo"]) not in client.get(reverse("platform_list")).content.decode()
    directory.add_member("/platforms/demo", carol.id)
    assert client.get(service_url()).status_code == 302


def test_click_through_asks_keycloak_in_a_bounded_number_of_calls(links, directory):
    client = signed_in(directory, "/platforms/demo")
    directory.calls.clear()
    client.get(service_url())
    assert directory.calls == ["find_user", "user_groups"]


def test_click_through_of_a_user_deleted_in_keycloak_is_403_with_the_reason(links, directory):
    client = signed_in(directory, "/platforms/demo")
    directory.delete_user(directory.find_user("carol").id)
    response = client.get(service_url())
    assert response.status_code == 403
    assert "no longer exists in Keycloak" in response.content.decode()


def test_click_through_while_keycloak_is_down_is_a_clear_503(links, directory):
    client = signed_in(directory, "/platforms/demo")
    directory.error = Unavailable("Keycloak did not answer in time to look up user carol (timeout 1s).")
    response = client.get(service_url())
    assert response.status_code == 503
    assert "Keycloak did not answer in time" in response.content.decode()
    assert "Access cannot be checked right now" in response.content.decode()


def test_service_not_ready_shows_a_self_refreshing_waiting_page(admin_client, links):
    response = admin_client.get(service_url("jupyterhub"))
    body = response.content.decode()
    assert response.status_code == 503
    assert 'http-equiv="refresh"' in body
    assert "not ready yet" in body


def test_unknown_service_is_404_and_never_an_open_redirect(admin_client, links):
    assert admin_client.get(service_url("evil")).status_code == 404
    assert admin_client.get(service_url() + "?next=https://evil.example").headers["Location"] == "https://b.example"


def test_list_links_go_through_the_click_through(admin_client, links):
    body = admin_client.get(reverse("platform_list")).content.decode()
    assert f'href="{service_url()}"' in body


def test_a_final_state_takes_the_request_message_away_without_a_reload(admin_client, platform):
    Platform.objects.filter(pk=platform.pk).update(status="deployed")
    assert 'id="messages" hx-swap-oob="true"' in status(admin_client).content.decode()
    Platform.objects.filter(pk=platform.pk).update(status="installing")
    assert "hx-swap-oob" not in status(admin_client).content.decode()
    page = admin_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    assert page.count('id="messages"') == 1


def test_a_platform_deleted_while_watched_says_so_on_the_list(admin_client):
    response = admin_client.get(reverse("platform_status", args=["gone"]), headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == reverse("platform_list")
    assert "gone is deleted" in admin_client.get(reverse("platform_list")).content.decode()


def test_a_platform_being_removed_offers_no_actions_and_no_links(admin_client, platform, links):
    Platform.objects.filter(pk=platform.pk).update(status="uninstalling")
    body = admin_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    for name in ("platform_users", "platform_edit", "platform_delete", "service_redirect"):
        args = ["demo", "binderhub"] if name == "service_redirect" else ["demo"]
        assert f'href="{reverse(name, args=args)}"' not in body, name
    assert "BinderHub (being removed)" in body


def test_services_show_their_own_icon_and_a_copy_button_once_ready(admin_client, platform, links):
    body = admin_client.get(reverse("platform_detail", args=["demo"])).content.decode()
    assert 'src="/static/icons/binderhub.svg"' in body and 'src="/static/icons/jupyterhub.svg"' in body
    assert 'data-copy="https://b.example"' in body
    assert body.count("data-copy=") == 1  # JupyterHub is not ready: nothing to copy
