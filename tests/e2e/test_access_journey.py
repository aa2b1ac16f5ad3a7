"""Access in a real browser: the admin grants bob a platform, bob reaches its service, then loses it.

The platform is deployed for real beforehand (helm against the local kube-apiserver, Zenith played
by the test); the browser then does what a person would on the Users page and as bob.
"""

import threading
import uuid

import pytest
from django.db import connection
from playwright.sync_api import expect

from platforms import tasks
from platforms.models import Operation, Platform
from tests.e2e.test_sign_in import sign_in
from tests.integration.test_deploy import helm_cli, play_zenith_operator

pytestmark = pytest.mark.django_db(transaction=True)


def off_the_browser_thread(work) -> None:
    """Run `work` in a thread of its own: the Helm service cannot run beside Playwright's event loop."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test below
            failure.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(180)
    if failure:
        raise failure[0]


@pytest.fixture
def deployed_platform(real_services, local_cluster, admin_user, kubeconfig_text):
    name = f"acc-{uuid.uuid4().hex[:6]}"
    platform = Platform.objects.create(
        name=name, cluster=local_cluster, app_version="0.1.0", created_by=admin_user, updated_by=admin_user
    )

    def deploy() -> None:
        tasks.run_operation(Operation.objects.request(platform, "install", admin_user).pk)
        play_zenith_operator(kubeconfig_text, name)
        handed: list[int] = []
        original = tasks.enqueue_operation
        tasks.enqueue_operation = handed.append
        try:
            tasks.sync_links(platform.pk)
            for operation_id in handed:
                tasks.run_operation(operation_id)
        finally:
            tasks.enqueue_operation = original

    off_the_browser_thread(deploy)
    platform.refresh_from_db()
    assert platform.status == Platform.Status.DEPLOYED, platform.status_message
    yield platform

    def remove() -> None:
        if Platform.objects.filter(pk=platform.pk).exists():
            tasks.run_operation(Operation.objects.request(platform, "uninstall", admin_user).pk)

    off_the_browser_thread(remove)
    helm_cli(kubeconfig_text, "uninstall", name, "-n", name, check=False)


def test_admin_grants_bob_a_platform_and_takes_it_back(live_server, browser, page, shot, deployed_platform):
    base, name = live_server.url, deployed_platform.name
    service = f"{base}/platforms/{name}/services/jupyterhub/"

    sign_in(page, base, "alice", "alice-password")
    page.goto(f"{base}/platforms/{name}/")
    page.click(f"a[href='/platforms/{name}/users/']")
    page.fill("#user-search", "bob")
    expect(page.locator("[data-testid=found-bob]")).to_be_visible()
    shot(page, "users-page-search")
    page.click("[data-testid=add-platform-bob]")
    expect(page.locator("[data-testid=remove-platform-bob]")).to_be_visible()
    shot(page, "bob-added")

    bob = browser.new_context().new_page()
    sign_in(bob, base, "bob", "bob-password")
    expect(bob.locator("[data-testid=platforms]")).to_contain_text(name)
    shot(bob, "bob-sees-the-platform")
    reached = bob.request.get(service, max_redirects=0)
    assert (reached.status, reached.headers["location"]) == (302, f"https://jupyterhub-{name}.zenith.example.org")

    page.once("dialog", lambda dialog: dialog.accept())  # the removal asks first
    page.click("[data-testid=remove-platform-bob]")
    expect(page.locator("[data-testid=remove-platform-bob]")).to_have_count(0)
    shot(page, "bob-removed")

    refused = bob.request.get(service, max_redirects=0)
    assert refused.status == 403
    bob.goto(service)
    shot(bob, "bob-refused")
    bob.context.close()
