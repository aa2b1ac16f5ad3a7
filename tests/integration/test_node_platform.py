"""A platform the console launches runs on the local stack's node, and its real JupyterHub obeys the console's groups.

Needs the opt-in node (DEVSTACK_NODE=1, root; see the README's local stack): the console installs the
real chart through helm-on-node (devstack/node/helm_on_node.py), the test plays Zenith with the
addresses the local stack uses, and an HTTP client with a cookie jar signs in to JupyterHub through
Keycloak, reaching the platform's proxy-public Service as Zenith's proxy would.
"""

import html
import os
import re
import time
import uuid
import warnings
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from django.urls import reverse
from kubernetes import client, config
from kubernetes.utils import parse_quantity

from devstack import node, zenith
from platforms import tasks
from platforms.models import Operation, Platform
from tests.integration import keycloak_admin
from tests.integration.http_browser import new_browser
from tests.integration.test_deploy import remove_platform
from tests.integration.test_oidc_login import keycloak_form_action
from tests.stack_fixtures import free_node_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("DEVSTACK_NODE") != "1", reason="needs the local stack's node: run with DEVSTACK_NODE=1 (root)"
    ),
]
HTMX = {"HX-Request": "true"}
# helm-on-node marks what it held back for want of an image (devstack/node/helm_on_node.py).
MISSING_IMAGES = "devstack.binderadmin.local/missing-images"


@pytest.fixture
def node_helm(devstack, settings) -> str:
    """The console's settings for the node: helm-on-node, and Keycloak where the hub pod reaches it."""
    from platforms.services import helm, keycloak, kube

    if "NODE_HELM_EXECUTABLE" not in devstack or not node.node_ready():
        pytest.skip("the local stack's node is not running Ready (python -m devstack up with DEVSTACK_NODE=1)")
    settings.HELM_EXECUTABLE = devstack["NODE_HELM_EXECUTABLE"]
    settings.APP_CHART_REPO_URL = devstack["APP_CHART_REPO_URL"]
    settings.KEYCLOAK_URL_FROM_CLUSTERS = devstack["KEYCLOAK_URL_FROM_CLUSTERS"]
    for cached in (helm.get_helm, kube.get_kube, keycloak.get_directory):
        cached.cache_clear()
    yield devstack["NODE_HELM_EXECUTABLE"]
    for cached in (helm.get_helm, kube.get_kube, keycloak.get_directory):
        cached.cache_clear()


@pytest.fixture
def core(kubeconfig_text) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text)))


@pytest.fixture
def node_platform(node_helm, local_cluster, admin_user, kubeconfig_text):
    """A platform row on the local cluster (Zenith under zenith.localhost); all it made is removed afterwards."""
    local_cluster.zenith_base_domain = zenith.config.ZENITH_BASE_DOMAIN
    local_cluster.save()
    platform = Platform.objects.create(
        name=f"node-{uuid.uuid4().hex[:6]}",
        cluster=local_cluster,
        app_version="0.2.0",
        servers_per_user=1,
        notebook_cpus=Decimal("0.5"),
        notebook_ram_gb=1,
        notebook_storage_gb=2,
        registry_storage_gb=5,
        # Not the console's lowest free port: other runs on the shared stack take those at the same time.
        registry_node_port=free_node_port(kubeconfig_text),
        created_by=admin_user,
        updated_by=admin_user,
    )
    yield platform
    remove_platform(kubeconfig_text, platform.name)


class ToService(requests.adapters.HTTPAdapter):
    """Sends a host's requests to a Service's address, as Zenith's proxy sends https://<fqdn> to the Service.

    The client keeps the URL it asked for (cookies, redirects); the service sees the host name and
    X-Forwarded-Proto a TLS-terminating proxy passes on.
    """

    def __init__(self, address: str):
        super().__init__()
        self.address = address

    def send(self, request, **kwargs):
        original = urlsplit(request.url)
        routed = request.copy()
        routed.url = f"http://{self.address}{original.path}" + (f"?{original.query}" if original.query else "")
        routed.headers["Host"] = original.hostname
        routed.headers["X-Forwarded-Proto"] = original.scheme
        response = super().send(routed, **kwargs)
        response.url, response.request = request.url, request
        return response


def browser_for(hub_url: str, address: str) -> requests.Session:
    browser = new_browser()
    host = urlsplit(hub_url).hostname
    for scheme in ("https", "http"):
        browser.mount(f"{scheme}://{host}/", ToService(address))
    return browser


def hub_sign_in(hub_url: str, address: str, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    """Open the hub's OAuth login, get sent to Keycloak, submit its form, and follow the callback."""
    browser = browser_for(hub_url, address)
    login_page = browser.get(f"{hub_url}/hub/oauth_login", timeout=60)
    assert login_page.url.startswith(f"{zenith.config.KEYCLOAK_URL}/realms/"), login_page.url
    answer = browser.post(
        keycloak_form_action(login_page.text), data={"username": username, "password": password}, timeout=60
    )
    return browser, answer


def keycloak_user_id(username: str) -> str:
    api = keycloak_admin.admin_session()
    params = {"username": username, "exact": "true"}
    [user] = api.get(f"{keycloak_admin.ADMIN_API}/users", params=params, timeout=10).json()
    return user["id"]


def ready_deployments(apps: client.AppsV1Api, namespace: str) -> dict[str, bool]:
    """Each Deployment of the platform and whether its pod is Ready."""
    return {d.metadata.name: bool(d.status.ready_replicas) for d in apps.list_namespaced_deployment(namespace).items}


def wait_for(what: str, check, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def launch(platform: Platform, monkeypatch, on_commit) -> None:
    """Install, play Zenith, and run the follow-up upgrade that gives the hub its public URL, as the worker would."""
    handed: list[int] = []
    monkeypatch.setattr(tasks, "enqueue_operation", handed.append)
    install = Operation.objects.request(platform, "install", None)
    tasks.run_operation(install.pk)
    install.refresh_from_db()
    assert install.state == "succeeded", install.error
    zenith.expose(zenith.local_api(), platform.name)
    with on_commit(execute=True):
        tasks.sync_links(platform.pk)
    assert len(handed) == 1, "the links should have asked for a follow-up upgrade"
    tasks.run_operation(handed.pop())
    platform.refresh_from_db()
    tasks.sync_links(platform.pk)
    platform.refresh_from_db()
    assert platform.status == Platform.Status.DEPLOYED, platform.status_message


def test_a_launched_platform_runs_and_its_jupyterhub_admits_only_the_consoles_members(
    node_platform, core, admin_client, monkeypatch, capsys, django_capture_on_commit_callbacks
):
    name = node_platform.name
    started = time.monotonic()
    launch(node_platform, monkeypatch, django_capture_on_commit_callbacks)
    launched = time.monotonic() - started

    apps = client.AppsV1Api(core.api_client)
    ready = ready_deployments(apps, name)
    assert all(ready.get(part) for part in ("hub", "proxy", "registry")), ready
    missing = (apps.read_namespaced_deployment("binder", name).metadata.annotations or {}).get(MISSING_IMAGES)
    if missing:
        warnings.warn(f"BinderHub not checked: the node has no image {missing} yet", stacklevel=1)
    else:
        assert ready["binder"], ready

    hub_url = node_platform.ready_links()["jupyterhub"]
    assert hub_url == f"https://jupyterhub-{name}.{zenith.config.ZENITH_BASE_DOMAIN}"
    proxy = core.read_namespaced_service("proxy-public", name)
    address = f"{proxy.spec.cluster_ip}:{proxy.spec.ports[0].port}"

    # bob is in no group of the platform: JupyterHub itself refuses him.
    _, refused = hub_sign_in(hub_url, address, "bob", "bob-password")
    assert refused.status_code == 403, (refused.status_code, refused.url)
    assert refused.url.startswith(f"{hub_url}/hub/oauth_callback")

    bob = keycloak_user_id("bob")
    users = reverse("platform_users_add", args=[name])
    assert admin_client.post(users, {"group": "platform", "user_id": bob}, headers=HTMX).status_code == 200
    signing_in = time.monotonic()
    browser, home = hub_sign_in(hub_url, address, "bob", "bob-password")
    admitted_seconds = time.monotonic() - signing_in
    assert home.status_code == 200, (home.status_code, home.url)
    assert home.url.startswith(f"{hub_url}/hub/")

    # A named server: the launch form's "Servers per user" is JupyterHub's named-server limit.
    spawning = time.monotonic()
    spawned = browser.get(f"{hub_url}/hub/spawn/bob/first", timeout=60)
    assert spawned.status_code == 200, (spawned.status_code, spawned.url)
    pod = wait_for("bob's server to be Ready", lambda: ready_pod(core, name, "bob"), timeout=240)
    server_ready = time.monotonic() - spawning
    [container] = [c for c in pod.spec.containers if c.name == "notebook"]
    limits, requests_ = container.resources.limits, container.resources.requests
    assert parse_quantity(limits["cpu"]) == Decimal("0.5")
    assert parse_quantity(limits["memory"]) == 1 * 1024**3
    assert parse_quantity(requests_["cpu"]) == Decimal("0.125")
    assert parse_quantity(requests_["memory"]) == 512 * 1024**2
    [claim_name] = [v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.persistent_volume_claim]
    claim = core.read_namespaced_persistent_volume_claim(claim_name, name)
    assert claim.spec.resources.requests["storage"] == "2Gi"
    assert claim.status.phase == "Bound"
    # The server's pages send the browser through the hub's OAuth first; its API then takes the cookie.
    page = f"{hub_url}/user/bob/first/tree"
    wait_for("bob's server to answer through the proxy", lambda: answered(browser, page), timeout=120)
    server = browser.get(f"{hub_url}/user/bob/first/api/status", timeout=30)
    assert server.status_code == 200, (server.status_code, server.text[:300])
    assert "started" in server.json()

    second = browser.get(f"{hub_url}/hub/spawn/bob/second", timeout=60)
    assert second.status_code == 400
    assert "maximum of 1 named servers" in html.unescape(second.text)

    remove = reverse("platform_users_remove", args=[name])
    assert admin_client.post(remove, {"group": "platform", "user_id": bob}, headers=HTMX).status_code == 200
    _, refused_again = hub_sign_in(hub_url, address, "bob", "bob-password")
    assert refused_again.status_code == 403
    with capsys.disabled():
        print(
            f"\nnode platform: launch to Deployed {launched:.1f}s, JupyterHub sign-in through Keycloak "
            f"{admitted_seconds:.1f}s, notebook server Ready {server_ready:.1f}s after the spawn request"
        )


def answered(browser: requests.Session, url: str) -> requests.Response | None:
    """The answer of the server itself: not the hub's page that says it is still starting."""
    answer = browser.get(url, timeout=30)
    return answer if answer.ok and urlsplit(answer.url).path == urlsplit(url).path else None


def ready_pod(core: client.CoreV1Api, namespace: str, username: str):
    """The user's notebook pod once it is Ready, else None."""
    for pod in core.list_namespaced_pod(namespace, label_selector="component=singleuser-server").items:
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        if ready and re.fullmatch(rf"jupyter-{username}-+first", pod.metadata.name or ""):
            return pod
    return None
