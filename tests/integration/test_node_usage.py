"""Usage read from a launched platform's real JupyterHub on the local stack's node, with the console's token.

Needs the opt-in node (DEVSTACK_NODE=1, root), like test_node_platform.py, whose fixtures and steps it
reuses: the console installs the real chart, so the hub's usage service and role are the chart's.
"""

import os

import pytest

from platforms.models import Platform
from platforms.services.errors import Unavailable
from platforms.services.jupyterhub import HubUsage, HubUsageReader
from tests.integration.test_node_platform import (  # noqa: F401 (core, node_helm and node_platform are fixtures)
    core,
    hub_sign_in,
    launch,
    node_helm,
    node_platform,
    ready_pod,
    wait_for,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("DEVSTACK_NODE") != "1", reason="needs the local stack's node: run with DEVSTACK_NODE=1 (root)"
    ),
]


def test_the_console_reads_a_node_platforms_usage_with_the_token_it_gave_the_hub(
    node_platform,  # noqa: F811 (the imported fixture)
    core,  # noqa: F811
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    name = node_platform.name
    launch(node_platform, monkeypatch, django_capture_on_commit_callbacks)
    hub_url = node_platform.ready_links()["jupyterhub"]
    proxy = core.read_namespaced_service("proxy-public", name)
    # The proxy's Service, where Zenith's tunnel would deliver the hub's public address.
    address = f"{proxy.spec.cluster_ip}:{proxy.spec.ports[0].port}"
    token = Platform.objects.get(pk=node_platform.pk).secrets["hub_usage_token"]
    reader = HubUsageReader(timeout=10)
    assert reader.read(f"http://{address}", token) == HubUsage(active_users=0, servers=0)
    with pytest.raises(Unavailable, match="refused the console's token"):
        reader.read(f"http://{address}", "not-the-token")

    # alice (a console admin, so in the hub's allowed groups) signs in and starts a server.
    browser, home = hub_sign_in(hub_url, address, "alice", "alice-password")
    assert home.status_code == 200, (home.status_code, home.url)
    assert browser.get(f"{hub_url}/hub/spawn/alice/first", timeout=60).status_code == 200
    wait_for("alice's server to be Ready", lambda: ready_pod(core, name, "alice"), timeout=240)
    running = HubUsage(active_users=1, servers=1)
    wait_for("the hub to count alice's server", lambda: reader.read(f"http://{address}", token) == running, 60)
