"""Benchmark: sign-in to a running platform's JupyterHub through Keycloak, and time to a started notebook server.

Run with the local stack up with its node (DEVSTACK_NODE=1, root):
    .venv/bin/python bench/jupyterhub_sign_in.py [--rounds N]
It uses its own SQLite database, launches one platform onto the node as the console's worker would
(helm-on-node, Zenith played, the follow-up upgrade), and serves it through `devstack zenith`'s proxy
on a port of its own, with the console's links there (ZENITH_LINK_SCHEME=http). bob is made a member
of the platform. Each round a fresh cookie jar, as a new browser:
  - sign-in: GET /hub/oauth_login, Keycloak's form posted, the callback followed to /hub/home;
  - server: from the spawn request to the notebook server's own answer through the proxy
    (/user/bob/bench/api/status), then the server is stopped through the hub's API and its pod awaited gone.
It prints each round and the median, min and max of both; then removes the platform.
BinderHub launches are not measured: the node has no BinderHub image (binderhub 1.0 is not on PyPI).
"""

import argparse
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORK = Path(tempfile.mkdtemp(prefix="binderadmin-bench-"))
USER, PASSWORD, SERVER = "bob", "bob-password", "bench"
TIMEOUT_SECONDS = 240


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def setup_django(proxy_port: int) -> dict[str, str]:
    from devstack import node, stack

    if not node.node_ready():
        raise SystemExit("the local stack's node is not Ready: python -m devstack up with DEVSTACK_NODE=1 (root)")
    environment = stack.console_env(with_node=True)
    environment["HELM_EXECUTABLE"] = environment["NODE_HELM_EXECUTABLE"]
    os.environ.update(environment)
    os.environ.update(ZENITH_LINK_SCHEME="http", ZENITH_LINK_PORT=str(proxy_port))
    os.environ["DATABASE_URL"] = f"sqlite:///{WORK / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "binderadmin.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return environment


def launch(name: str):
    """Install, play Zenith and run the follow-up upgrade, as the worker would; the Deployed platform."""
    from django.contrib.auth.models import User

    from devstack import config, zenith
    from platforms import tasks
    from platforms.models import Cluster, Operation, Platform

    admin = User.objects.create_user("bench-admin", is_staff=True)
    from tests.stack_fixtures import free_node_port

    cluster = Cluster(
        name="local", context="devstack", exposure=Cluster.Exposure.ZENITH, zenith_base_domain=config.ZENITH_BASE_DOMAIN
    )
    cluster.kubeconfig = config.KUBECONFIG.read_text()
    cluster.save()
    platform = Platform.objects.create(
        name=name,
        cluster=cluster,
        app_version="0.2.0",
        servers_per_user=1,
        notebook_cpus=Decimal("0.5"),
        notebook_ram_gb=1,
        notebook_storage_gb=2,
        registry_storage_gb=5,
        # Not the lowest free port, which test runs on the same stack take at the same time.
        registry_node_port=free_node_port(cluster.kubeconfig),
        created_by=admin,
        updated_by=admin,
    )
    handed: list[int] = []
    tasks.enqueue_operation = handed.append  # this process is the worker
    install = Operation.objects.request(platform, "install", None)
    if install.pk not in handed:
        handed.append(install.pk)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while platform.status != Platform.Status.DEPLOYED:
        if time.monotonic() > deadline:
            raise SystemExit(f"the platform was not Deployed: {platform.status} {platform.status_message}")
        while handed:
            tasks.run_operation(handed.pop(0))
        zenith.expose(zenith.local_api(), name)
        tasks.sync_links(platform.pk)
        platform.refresh_from_db()
        if not handed and platform.status != Platform.Status.DEPLOYED:
            time.sleep(1)
    return platform


def browser(port: int):
    """A cookie-jar client that connects to 127.0.0.1 for *.localhost names, as browsers do."""
    import requests

    from tests.integration.http_browser import new_browser

    class ToLoopback(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):
            original = urlsplit(request.url)
            routed = request.copy()
            routed.url = original._replace(netloc=f"127.0.0.1:{original.port}").geturl()
            routed.headers["Host"] = original.netloc
            response = super().send(routed, **kwargs)
            response.url, response.request = request.url, request
            return response

    session = new_browser()
    for prefix in ("jupyterhub", "binderhub"):
        session.mount(f"http://{prefix}-", ToLoopback())
    return session


def sign_in(session, hub_url: str) -> None:
    from tests.integration.test_oidc_login import keycloak_form_action

    login = session.get(f"{hub_url}/hub/oauth_login", timeout=60)
    home = session.post(keycloak_form_action(login.text), data={"username": USER, "password": PASSWORD}, timeout=60)
    if (home.status_code, home.url) != (200, f"{hub_url}/hub/home"):
        raise SystemExit(f"sign-in failed: {home.status_code} at {home.url}")


def start_server(session, hub_url: str) -> None:
    spawned = session.get(f"{hub_url}/hub/spawn/{USER}/{SERVER}", timeout=60)
    if spawned.status_code != 200:
        raise SystemExit(f"spawn refused: {spawned.status_code} at {spawned.url}")
    # The server's pages send a new browser through the hub's OAuth first (its API would answer 403).
    tree = f"{hub_url}/user/{USER}/{SERVER}/tree"
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        answer = session.get(tree, timeout=30)
        # Until the server runs, the hub answers with its own pages (spawn-pending), not the server's.
        if answer.ok and urlsplit(answer.url).path == urlsplit(tree).path:
            status = session.get(f"{hub_url}/user/{USER}/{SERVER}/api/status", timeout=30)
            if status.status_code != 200 or "started" not in status.json():
                raise SystemExit(f"the server's API did not answer: {status.status_code}")
            return
        time.sleep(0.2)
    raise SystemExit(f"the notebook server did not answer in time: {answer.status_code} at {answer.url}")


def stop_server(session, hub_url: str, core, namespace: str) -> None:
    xsrf = session.cookies.get("_xsrf", path="/hub/")
    stopped = session.delete(
        f"{hub_url}/hub/api/users/{USER}/servers/{SERVER}", headers={"X-XSRFToken": xsrf or ""}, timeout=60
    )
    if stopped.status_code not in (202, 204):
        raise SystemExit(f"stopping the server was refused: {stopped.status_code} {stopped.text[:200]}")
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while core.list_namespaced_pod(namespace, label_selector="component=singleuser-server").items:
        if time.monotonic() > deadline:
            raise SystemExit("the notebook pod did not go")
        time.sleep(0.5)


def summary(label: str, values: list[float]) -> str:
    return f"{label}: median {statistics.median(values):.2f} s, min {min(values):.2f} s, max {max(values):.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    setup_django(port)
    import yaml
    from kubernetes import client, config

    from devstack import config as devstack_config
    from devstack import zenith
    from platforms.access_rules import platform_group
    from platforms.services import keycloak
    from tests.integration.test_deploy import remove_platform

    kubeconfig = devstack_config.KUBECONFIG.read_text()
    core = client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(kubeconfig)))
    name = f"bench-hub-{uuid.uuid4().hex[:6]}"
    try:
        started = time.monotonic()
        platform = launch(name)
        print(f"platform {name} Deployed in {time.monotonic() - started:.1f} s")
        proxy = zenith.start_proxy(port)
        proxy.routes = zenith.proxy_routes(zenith.expose(zenith.local_api(), name))
        directory = keycloak.get_directory()
        directory.add_member(platform_group(name), directory.find_user(USER).id)
        hub_url = platform.ready_links()["jupyterhub"]
        print(f"JupyterHub at {hub_url} (Zenith's local proxy)")
        sign_ins, servers = [], []
        for round_ in range(1, args.rounds + 1):
            session = browser(port)
            began = time.monotonic()
            sign_in(session, hub_url)
            signed_in = time.monotonic()
            start_server(session, hub_url)
            ready = time.monotonic()
            sign_ins.append(signed_in - began)
            servers.append(ready - signed_in)
            print(f"round {round_}: sign-in {sign_ins[-1]:.2f} s, notebook server answering {servers[-1]:.2f} s")
            stop_server(session, hub_url, core, name)
        print(summary(f"sign-in through Keycloak ({args.rounds} rounds)", sign_ins))
        print(summary("spawn request -> notebook server answering", servers))
    finally:
        with contextlib.suppress(Exception):
            remove_platform(kubeconfig, name)


if __name__ == "__main__":
    main()
