"""`make run`'s way to a platform: `python -m devstack zenith --watch` serves its JupyterHub at the console's link.

Needs the opt-in node (DEVSTACK_NODE=1, root), as test_node_platform.py. The console links with
ZENITH_LINK_SCHEME=http and ZENITH_LINK_PORT=<the proxy's port>, as `devstack env` sets them; the real
command runs the watch and its proxy; an HTTP client connects where a browser resolves
<name>.zenith.localhost (loopback, RFC 6761) and sends the Host header a browser sends.
"""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.urls import reverse

from devstack import zenith
from tests.integration import test_node_platform as node_test
from tests.integration.http_browser import new_browser
from tests.integration.test_node_platform import HTMX, answered, keycloak_user_id, launch, ready_pod, wait_for
from tests.integration.test_oidc_login import keycloak_form_action

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("DEVSTACK_NODE") != "1", reason="needs the local stack's node: run with DEVSTACK_NODE=1 (root)"
    ),
]
REPO = Path(__file__).resolve().parents[2]
# The node test's fixtures: a platform row on the local cluster, installed by helm-on-node, removed afterwards.
node_helm, node_platform, core = node_test.node_helm, node_test.node_platform, node_test.core


class ToLoopback(requests.adapters.HTTPAdapter):
    """Connects to 127.0.0.1, where a browser resolves any *.localhost name; the request is left as it was."""

    def send(self, request, **kwargs):
        original = urlsplit(request.url)
        routed = request.copy()
        routed.url = original._replace(netloc=f"127.0.0.1:{original.port}").geturl()
        routed.headers["Host"] = original.netloc
        response = super().send(routed, **kwargs)
        response.url, response.request = request.url, request
        return response


def browser_at(port: int) -> requests.Session:
    browser = new_browser()
    browser.mount(f"http://{zenith.config.ZENITH_BASE_DOMAIN}:{port}/", ToLoopback())
    for prefix in ("jupyterhub", "binderhub"):
        # requests picks the adapter of the longest matching prefix: the platform's names.
        browser.mount(f"http://{prefix}-", ToLoopback())
    return browser


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def proxy_port(settings) -> int:
    """A port of the test's own for the proxy; the console links there, as `devstack env` makes it."""
    port = free_port()
    settings.ZENITH_LINK_SCHEME, settings.ZENITH_LINK_PORT = "http", port
    return port


@contextlib.contextmanager
def zenith_watch(platform: str, port: int, log: Path):
    """`python -m devstack zenith <platform> --watch`, with its proxy on the given port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "zenith", platform, "--watch"],
        cwd=REPO,
        env={**os.environ, "DEVSTACK_ZENITH_PROXY_PORT": str(port)},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for("the proxy to listen", lambda: "serving them at" in log.read_text() or process.poll() is not None, 60)
        assert process.poll() is None, log.read_text()
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_person_reaches_the_platforms_jupyterhub_at_the_consoles_link(
    node_platform, proxy_port, core, admin_client, monkeypatch, django_capture_on_commit_callbacks, tmp_path
):
    name, port = node_platform.name, proxy_port
    # launch() plays Zenith as the watch does (the same addresses); the watch then serves them.
    launch(node_platform, monkeypatch, django_capture_on_commit_callbacks)
    with zenith_watch(name, port, tmp_path / "watch.log"):
        reach_jupyterhub(node_platform, port, core, admin_client)


def reach_jupyterhub(node_platform, port: int, core, admin_client) -> None:
    name = node_platform.name
    hub_url = node_platform.ready_links()["jupyterhub"]
    assert hub_url == f"http://jupyterhub-{name}.{zenith.config.ZENITH_BASE_DOMAIN}:{port}"
    # The platform page's click-through leads there.
    click = admin_client.get(reverse("service_redirect", args=[name, "jupyterhub"]))
    assert (click.status_code, click.headers["Location"]) == (302, hub_url)

    browser = browser_at(port)
    login = browser.get(f"{hub_url}/hub/login", timeout=60)
    assert login.status_code == 200, (login.status_code, login.text[:300])
    assert login.url == f"{hub_url}/hub/login"
    assert "oauth_login" in login.text and "JupyterHub" in login.text

    # Only the names the watch wrote are served: not another host, nor another port in the Host header.
    for host in ("evil.example.com", f"jupyterhub-{name}.{zenith.config.ZENITH_BASE_DOMAIN}:1"):
        other = requests.get(f"http://127.0.0.1:{port}/hub/login", headers={"Host": host}, timeout=10)
        assert other.status_code == 421, (host, other.status_code)

    # Keycloak takes the link's OAuth callback (its redirect URIs come from the links) and sends bob back.
    bob = keycloak_user_id("bob")
    users = reverse("platform_users_add", args=[name])
    assert admin_client.post(users, {"group": "platform", "user_id": bob}, headers=HTMX).status_code == 200
    keycloak = browser.get(f"{hub_url}/hub/oauth_login", timeout=60)
    assert keycloak.url.startswith(f"{zenith.config.KEYCLOAK_URL}/realms/"), keycloak.url
    home = browser.post(
        keycloak_form_action(keycloak.text), data={"username": "bob", "password": "bob-password"}, timeout=60
    )
    assert (home.status_code, home.url) == (200, f"{hub_url}/hub/home"), (home.status_code, home.url)

    # A notebook server, its page and a WebSocket (what a kernel uses) through the proxy.
    assert browser.get(f"{hub_url}/hub/spawn/bob/first", timeout=60).status_code == 200
    wait_for("bob's server to be Ready", lambda: ready_pod(core, name, "bob"), timeout=240)
    tree = f"{hub_url}/user/bob/first/tree"
    wait_for("bob's server to answer through the proxy", lambda: answered(browser, tree), timeout=120)
    assert websocket_status(browser, hub_url, "/user/bob/first/api/events/subscribe") == 101


def websocket_status(browser: requests.Session, base: str, path: str) -> int:
    """The status of a WebSocket handshake sent as a browser sends it, with the session's cookies."""
    parts = urlsplit(base)
    cookies = "; ".join(f"{c.name}={c.value}" for c in browser.cookies if parts.hostname.endswith(c.domain.lstrip(".")))
    head = (
        f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nOrigin: {base}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Cookie: {cookies}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", parts.port), timeout=30) as raw:
        raw.sendall(head.encode())
        deadline = time.monotonic() + 30
        answer = b""
        while b"\r\n" not in answer and time.monotonic() < deadline:
            answer += raw.recv(1024)
    return int(answer.split(b" ", 2)[1])
