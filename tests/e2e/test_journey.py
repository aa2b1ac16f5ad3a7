"""The admin's journey in a real browser: register the cluster, launch, watch it deploy, click through, delete.

A real django-q2 worker runs the deploys with the real helm against the local kube-apiserver; the
test plays the Zenith operator by marking the Reservations Ready while the page is open.
"""

import re
import uuid

import pytest
from playwright.sync_api import expect

from devstack import config as devstack_config
from tests.e2e.test_sign_in import sign_in
from tests.integration.test_deploy import play_zenith_operator
from tests.integration.test_worker import start_worker, stop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(devstack, tmp_path):
    process = start_worker(devstack, tmp_path / "worker.log")
    yield process
    stop(process)


def test_admin_registers_launches_watches_clicks_through_and_deletes(
    devstack, live_server, page, shot, worker, kubeconfig_text, settings
):
    settings.LINK_SYNC_MIN_INTERVAL_SECONDS = 1
    base = live_server.url
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    sign_in(page, base, "alice", "alice-password")

    page.click("nav >> text=Clusters")
    page.click("text=Register a cluster")
    page.fill("#id_name", "local")
    page.fill("#id_kubeconfig", kubeconfig_text)
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
    expect(page.locator("[data-testid=status-message]")).to_contain_text("waiting for", timeout=60_000)
    shot(page, "installed-waiting-for-zenith")

    play_zenith_operator(kubeconfig_text, name)
    expect(page.locator("[data-testid=status]")).to_have_text("Deployed", timeout=60_000)
    expect(page.locator("[data-testid=service-binderhub]")).to_have_text(re.compile("BinderHub"))
    shot(page, "deployed-with-services")

    href = page.get_attribute("[data-testid=service-jupyterhub]", "href")
    response = page.request.get(f"{base}{href}", max_redirects=0)
    assert response.status == 302
    assert response.headers["location"] == f"https://jupyterhub-{name}.zenith.example.org"

    page.click("text=Delete")
    page.fill("#confirm_name", name)
    shot(page, "delete-confirmation")
    page.click(f"button:has-text('Delete {name}')")
    page.wait_for_url(f"{base}/", timeout=90_000)
    expect(page.locator("body")).not_to_contain_text(name)
    shot(page, "deleted")
