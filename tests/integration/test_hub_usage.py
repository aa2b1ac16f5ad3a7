"""Usage read from a real JupyterHub (5.3.0, as the hub image has), configured with the chart's usage service.

The hub runs as a local process on loopback (tests/fixtures/jupyterhub/jupyterhub_config.py): dummy
sign-in, no proxy, and "notebook servers" that are plain HTTP servers, which the hub starts, waits
for and counts as it would real ones.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from platforms.services import jupyterhub
from platforms.services.errors import NoAnswer, Unavailable
from platforms.services.jupyterhub import HubUsage, HubUsageReader
from platforms.values import build_values
from tests.unit.test_values_schema import spec

CONFIG = Path(__file__).resolve().parent.parent / "fixtures" / "jupyterhub" / "jupyterhub_config.py"
USAGE_TOKEN = "usage-token-of-the-console"
ADMIN_TOKEN = "admin-token-of-the-test"
TIMEOUT = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chart_services_and_roles() -> tuple[dict, dict]:
    """hub.services and hub.loadRoles as platforms.values gives them, made JupyterHub's as z2jh does."""
    hub = build_values(spec(hub_usage_token=USAGE_TOKEN))["binderhub"]["jupyterhub"]["hub"]
    services = {name: {"api_token": service["apiToken"]} for name, service in hub["services"].items()}
    return services, hub["loadRoles"]


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory):
    state = tmp_path_factory.mktemp("hub")
    port = free_port()
    services, roles = chart_services_and_roles()
    env = {
        **os.environ,
        "HUB_PORT": str(port),
        "HUB_STATE_DIR": str(state),
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "HUB_SERVICES": json.dumps(services),
        "HUB_ROLES": json.dumps(roles),
    }
    log = (state / "hub.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)], cwd=state, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/hub/api/", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert process.poll() is None, (state / "hub.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the hub did not start in 60 s"
        time.sleep(0.3)
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def admin(method: str, url: str, **kwargs) -> requests.Response:
    response = requests.request(method, url, headers={"Authorization": f"token {ADMIN_TOKEN}"}, timeout=30, **kwargs)
    response.raise_for_status()
    return response


def wait_until_ready(url: str, user: str, server: str) -> None:
    deadline = time.monotonic() + 30
    while not admin("GET", f"{url}/hub/api/users/{user}").json()["servers"].get(server, {}).get("ready"):
        assert time.monotonic() < deadline, f"{user}/{server} did not start"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def running(hub_url):
    """ann runs two servers (her default one and a named one), ben one, cat none."""
    admin("POST", f"{hub_url}/hub/api/users", json={"usernames": ["ann", "ben", "cat"]})
    for user, path, server in (("ann", "server", ""), ("ann", "servers/second", "second"), ("ben", "server", "")):
        admin("POST", f"{hub_url}/hub/api/users/{user}/{path}")
        wait_until_ready(hub_url, user, server)
    return hub_url


def test_usage_counts_the_users_with_servers_and_their_running_servers(running):
    assert HubUsageReader(timeout=TIMEOUT).read(running, USAGE_TOKEN) == HubUsage(active_users=2, servers=3)


def test_usage_follows_the_real_hubs_pages(running, monkeypatch):
    monkeypatch.setattr(jupyterhub, "PAGE_SIZE", 1)
    assert HubUsageReader(timeout=TIMEOUT).read(running, USAGE_TOKEN) == HubUsage(active_users=2, servers=3)


def test_the_usage_token_may_read_but_not_start_or_stop_servers_or_add_users(running):
    headers = {"Authorization": f"token {USAGE_TOKEN}"}
    assert requests.post(f"{running}/hub/api/users/cat/server", headers=headers, timeout=10).status_code == 403
    assert requests.delete(f"{running}/hub/api/users/ann/server", headers=headers, timeout=10).status_code == 403
    new_user = requests.post(f"{running}/hub/api/users", headers=headers, json={"usernames": ["zed"]}, timeout=10)
    assert new_user.status_code == 403


def test_a_token_the_hub_does_not_know_is_refused(running):
    with pytest.raises(Unavailable, match=r"refused the console's token \(HTTP 403\)"):
        HubUsageReader(timeout=TIMEOUT).read(running, "not-the-token")


def test_a_stopped_server_is_no_longer_counted(hub_url, running):
    admin("POST", f"{hub_url}/hub/api/users", json={"usernames": ["eve"]})
    admin("POST", f"{hub_url}/hub/api/users/eve/server")
    wait_until_ready(hub_url, "eve", "")
    assert HubUsageReader(timeout=TIMEOUT).read(hub_url, USAGE_TOKEN) == HubUsage(active_users=3, servers=4)
    admin("DELETE", f"{hub_url}/hub/api/users/eve/server")
    deadline = time.monotonic() + 30
    while HubUsageReader(timeout=TIMEOUT).read(hub_url, USAGE_TOKEN) != HubUsage(active_users=2, servers=3):
        assert time.monotonic() < deadline, "eve's server was still counted 30 s after it stopped"
        time.sleep(0.2)


def test_a_hub_that_accepts_but_never_answers_is_unknown_within_the_budget():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nothing ever answers
        started = time.monotonic()
        with pytest.raises(NoAnswer, match="hub not reachable: no answer within 1 s"):
            HubUsageReader(timeout=1).read(f"http://127.0.0.1:{silent.getsockname()[1]}", USAGE_TOKEN)
        assert time.monotonic() - started < 2


def test_a_hub_that_is_not_there_is_unknown_at_once():
    started = time.monotonic()
    with pytest.raises(NoAnswer, match="hub not reachable: the connection failed"):
        HubUsageReader(timeout=TIMEOUT).read(f"http://127.0.0.1:{free_port()}", USAGE_TOKEN)
    assert time.monotonic() - started < 1
