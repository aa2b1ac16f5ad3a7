"""The whole journey in a real browser, as the issue tells it, with a screenshot of every step.

The admin signs in on Keycloak's page, registers the local cluster, launches a platform, watches it
deploy and its services appear, clicks through, gives bob the platform on its Users page, sees bob
reach the service and lose it again, and deletes the platform. A real django-q2 worker runs the
deploys with the real helm against the local kube-apiserver; the test plays the Zenith operator by
marking the Reservations Ready while the page is open; Keycloak is the real one.
"""

import re
import uuid

import pytest
from playwright.sync_api import expect

from devstack import config as devstack_config
from tests.e2e.test_sign_in import sign_in
from tests.integration.test_deploy import play_zenith_operator, remove_platform
from tests.integration.test_worker import start_worker, stop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(devstack, tmp_path):
    process = start_worker(devstack, tmp_path / "worker.log")
    yield process
    stop(process)


def stand_in_for_the_services(page) -> None:
    """No pod runs on the local stack: the browser gets a page naming the host for the services'
    Zenith addresses, so a click-through is followed to its end (the console's redirect is real)."""

    def answer(route) -> None:
        host = route.request.url.split("/")[2]
        route.fulfill(content_type="text/html", body=f"<title>{host}</title><h1>Reached {host}</h1>")

    page.route("https://*.zenith.example.org/**", answer)


@pytest.fixture
def platform_name(kubeconfig_text):
    """A fresh platform name; whatever the test leaves installed under it is removed after."""
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    yield name
    remove_platform(kubeconfig_text, name)


def test_admin_launches_a_platform_shares_it_with_bob_takes_it_back_and_deletes_it(
    devstack, live_server, new_page, page, shot, worker, kubeconfig_text, settings, platform_name
):
    settings.LINK_SYNC_MIN_INTERVAL_SECONDS = 1
    base, name = live_server.url, platform_name
    service = f"{base}/platforms/{name}/services/jupyterhub/"
    page.goto(f"{base}/")
    page.wait_for_selector("#kc-form-login")
    shot(page, "keycloak-login-page")
    sign_in(page, base, "alice", "alice-password")
    shot(page, "admin-signed-in")

    page.click("nav >> text=Clusters")
    page.click("text=Register a cluster")
    page.fill("#id_name", "local")
    # Zenith is chosen: only its field shows; Ingress's appear when Ingress is chosen.
    expect(page.locator("#id_ingress_base_domain")).to_be_hidden()
    page.select_option("#id_exposure", "ingress")
    expect(page.locator("#id_ingress_base_domain")).to_be_visible()
    expect(page.locator("#id_zenith_base_domain")).to_be_hidden()
    page.select_option("#id_exposure", "zenith")
    page.fill("#id_zenith_base_domain", "zenith.example.org")
    page.fill("#id_kubeconfig", kubeconfig_text)
    page.locator("#id_kubeconfig").dispatch_event("change")
    # The pasted kubeconfig's contexts are offered for the context field, which comes after it.
    expect(page.locator("#kubeconfig-contexts option[value=devstack]")).to_have_count(1)
    page.fill("#id_context", "devstack")
    shot(page, "register-cluster")
    page.click("text=Register and check")
    expect(page.locator("[data-testid=cluster-check]")).to_contain_text(devstack_config.KUBERNETES_VERSION)
    shot(page, "cluster-registered")

    page.click("nav >> text=Platforms")
    page.click("text=Launch a platform")
    page.fill("#id_name", name)
    page.select_option("#id_cluster", label="local")
    expect(page.locator("#id_app_version")).to_have_value("0.2.0")
    shot(page, "launch-form")
    page.click("button:has-text('Launch')")
    page.wait_for_url(f"{base}/platforms/{name}/")
    page.evaluate("window.sameDocument = true")  # gone if the page reloads: htmx alone must update it
    expect(page.locator("[data-testid=status-message]")).to_contain_text("waiting for", timeout=60_000)
    expect(page.locator("[data-testid=service-binderhub]")).to_have_text("BinderHub (not ready)")
    shot(page, "installed-waiting-for-zenith")

    play_zenith_operator(kubeconfig_text, name)
    expect(page.locator("[data-testid=status]")).to_have_text("Deployed", timeout=60_000)
    for key, label in (("binderhub", "BinderHub"), ("jupyterhub", "JupyterHub")):
        expect(page.locator(f"[data-testid=service-{key}]")).to_have_text(label)  # no "(not ready)"
    expect(page.locator("[data-testid=services] img.icon")).to_have_count(2)
    assert page.evaluate("[...document.images].every((image) => image.complete && image.naturalWidth > 0)")
    expect(page.locator(".messages")).to_have_count(0)  # "Launch of … requested" went with the final state
    expect(page.locator("button[data-copy]").first).to_have_attribute("data-copy", re.compile(r"^https://"))
    assert page.evaluate("window.sameDocument === true"), "the platform page reloaded instead of updating in place"
    shot(page, "deployed-with-services")

    assert f"{base}{page.get_attribute('[data-testid=service-jupyterhub]', 'href')}" == service
    response = page.request.get(service, max_redirects=0)
    assert (response.status, response.headers["location"]) == (302, f"https://jupyterhub-{name}.zenith.example.org")
    stand_in_for_the_services(page)
    page.click("[data-testid=service-jupyterhub]")
    expect(page.locator("h1")).to_have_text(f"Reached jupyterhub-{name}.zenith.example.org")
    shot(page, "clicked-through-to-jupyterhub")
    page.go_back()

    page.click(f"a[href='/platforms/{name}/users/']")
    # Wait for the load event: typing before htmx has set up the search box would send no search.
    page.wait_for_url(f"{base}/platforms/{name}/users/")
    page.fill("#user-search", "bob")
    expect(page.locator("[data-testid=found-bob]")).to_be_visible(timeout=20_000)  # a cold Keycloak is slow
    shot(page, "users-page-search")
    page.click("[data-testid=add-platform-bob]")
    expect(page.locator("[data-testid=remove-platform-bob]")).to_be_visible()
    shot(page, "bob-added")

    bob = new_page()  # a second browser context: bob's own cookies
    sign_in(bob, base, "bob", "bob-password")
    expect(bob.locator("[data-testid=platforms]")).to_contain_text(name)
    shot(bob, "bob-sees-the-platform")
    stand_in_for_the_services(bob)
    bob.click(f"tr:has(a[href='/platforms/{name}/']) [data-testid=service-jupyterhub]")
    expect(bob.locator("h1")).to_have_text(f"Reached jupyterhub-{name}.zenith.example.org")
    shot(bob, "bob-reached-jupyterhub")

    page.once("dialog", lambda dialog: dialog.accept())  # the removal asks first
    page.click("[data-testid=remove-platform-bob]")
    expect(page.locator("[data-testid=remove-platform-bob]")).to_have_count(0)
    shot(page, "bob-removed")
    # No longer his: the platform is as hidden from him as one that does not exist.
    refused = bob.request.get(service, max_redirects=0)
    assert refused.status == 404
    bob.goto(service)
    expect(bob.locator("h1")).to_have_text("Not found")
    expect(bob.locator("body")).not_to_contain_text(name)
    shot(bob, "bob-refused")

    page.goto(f"{base}/platforms/{name}/")
    page.click("text=Delete")
    # By keyboard alone: the confirmation field is focused by its label, typed into, and Enter submits.
    page.get_by_label(re.compile(f"Type {name} to confirm")).focus()
    page.keyboard.type(name)
    shot(page, "delete-confirmation")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/", timeout=90_000)
    expect(page.locator(".messages")).to_contain_text(f"{name} is deleted")
    expect(page.locator(f"a[href='/platforms/{name}/']")).to_have_count(0)
    shot(page, "deleted")
