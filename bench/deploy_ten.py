"""Benchmark: 10 platforms deployed through the console (2 workers) vs the same 10 helm commands.

Run with the local stack up:  .venv/bin/python bench/deploy_ten.py
It uses its own SQLite database, starts a real `manage.py qcluster` with 2 workers, waits until
both worker processes are ready, POSTs the launch form 10 times, and waits for every install
operation to succeed. It runs the same 10 `helm upgrade --install` commands itself, 2 at a time,
once before and once after the console (the machine's speed drifts; the ratio is against their
mean). It prints:
  - the wall time of each run and the ratio (console / mean direct; target <= 1.10);
  - the time from each Launch POST to helm starting (the operation's started_at; target < 1 s).
"""

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORK = Path(tempfile.mkdtemp(prefix="binderadmin-bench-"))
COUNT = 10
HTPASSWD = "binderhub:$2b$10$" + "a" * 53


def setup_django() -> dict[str, str]:
    from devstack import stack

    environment = stack.console_env()
    os.environ.update(environment)
    os.environ["DATABASE_URL"] = f"sqlite:///{WORK / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "binderadmin.settings"
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,127.0.0.1"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return environment


def start_worker() -> subprocess.Popen:
    env = {**os.environ, "Q_WORKERS": "2"}
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=REPO,
        env=env,
        stdout=open(WORK / "worker.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until_ready(worker: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until each worker process has said it is ready (platforms.tasks.prepare_worker)."""
    deadline = time.monotonic() + timeout
    while (WORK / "worker.log").read_text().count("is ready for operations") < 2:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the workers did not start; see {WORK / 'worker.log'}")
        time.sleep(0.1)


def console_run(prefix: str) -> tuple[float, list[float]]:
    from django.contrib.auth.models import User
    from django.test import Client

    from devstack import config
    from platforms.models import Cluster, Operation, Platform

    admin = User.objects.create_user("bench-admin", is_staff=True)
    cluster = Cluster(name="local", context="devstack")
    cluster.kubeconfig = config.KUBECONFIG.read_text()
    cluster.save()
    client = Client()
    client.force_login(admin)
    posted_at: dict[str, float] = {}
    start = time.time()
    for i in range(COUNT):
        name = f"{prefix}-c{i}"
        data = {
            "name": name,
            "cluster": cluster.pk,
            "app_version": "0.1.0",
            "servers_per_user": 3,
            "notebook_cpus": 1,
            "notebook_ram_gb": 2,
            "notebook_storage_gb": 10,
            "registry_storage_gb": 10,
        }
        posted_at[name] = time.time()
        response = client.post("/launch/", data)
        assert response.status_code == 302, response.content[:500]
    installs = Operation.objects.filter(kind="install", platform__name__startswith=f"{prefix}-c")
    while installs.exclude(state__in=["succeeded", "failed"]).exists() or installs.count() < COUNT:
        time.sleep(0.1)
    wall = time.time() - start
    failed = list(installs.filter(state="failed").values_list("platform__name", "error"))
    assert not failed, failed
    in_post_order = sorted(installs.select_related("platform"), key=lambda op: posted_at[op.platform.name])
    latencies = [op.started_at.timestamp() - posted_at[op.platform.name] for op in in_post_order]
    Platform.objects.all().update(status="deployed")  # stop link syncs from touching the cluster further
    return wall, latencies


def free_node_ports(kubeconfig: str, count: int) -> list[int]:
    """The lowest `count` NodePorts no Service uses, as the console would pick them one by one."""
    import yaml
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(Path(kubeconfig).read_text())))
    services = core.list_service_for_all_namespaces().items
    used = {port.node_port for service in services for port in service.spec.ports or [] if port.node_port}
    return [port for port in range(30000, 32768) if port not in used][:count]


def direct_run(prefix: str, helm: str, kubeconfig: str, repo: str, kind: str) -> float:
    from platforms.values import ValuesInput, build_values

    node_ports = free_node_ports(kubeconfig, COUNT)

    def one(i: int) -> None:
        name = f"{prefix}-{kind}{i}"
        values = build_values(
            ValuesInput(
                name,
                3,
                1,
                2,
                10,
                10,
                registry_password="x",
                registry_htpasswd=HTPASSWD,
                oidc_client_id="c",
                oidc_client_secret="s",
                registry_node_port=node_ports[i],
            )  # fmt: skip
        )
        values_file = WORK / f"{name}.json"
        values_file.write_text(json.dumps(values))
        subprocess.run(
            [helm, "upgrade", "--install", name, "binderhub-platform", "--repo", repo, "--version", "0.1.0",
             "--namespace", name, "--create-namespace", "--atomic", "--values", str(values_file),
             "--kubeconfig", kubeconfig, "--output", "json"],
            check=True, capture_output=True,
        )  # fmt: skip

    start = time.time()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, range(COUNT)))
    return time.time() - start


def cleanup(prefix: str, helm: str, kubeconfig: str) -> None:
    import yaml
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(Path(kubeconfig).read_text())))
    for kind in ("c", "d", "e"):
        for i in range(COUNT):
            name = f"{prefix}-{kind}{i}"
            subprocess.run([helm, "uninstall", name, "-n", name, "--kubeconfig", kubeconfig], capture_output=True)
            with contextlib.suppress(client.ApiException):
                core.delete_namespace(name)


def main() -> None:
    environment = setup_django()
    from devstack import config

    prefix = f"b{uuid.uuid4().hex[:4]}"
    # The console's helm, which on the local stack is devstack's helm-without-node (it pauses the
    # Deployments no pod can serve): the direct run pays for the same post-renderer, so the ratio is fair.
    helm, kubeconfig, repo = environment["HELM_EXECUTABLE"], str(config.KUBECONFIG), environment["APP_CHART_REPO_URL"]
    direct_before = direct_run(prefix, helm, kubeconfig, repo, "d")
    worker = start_worker()
    wait_until_ready(worker)  # as a production worker has long been
    try:
        console_wall, latencies = console_run(prefix)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    direct_after = direct_run(prefix, helm, kubeconfig, repo, "e")
    cleanup(prefix, helm, kubeconfig)
    direct_wall = (direct_before + direct_after) / 2
    print(f"platforms: {COUNT}, workers: 2, helm concurrency for the direct run: 2")
    print(f"console wall time: {console_wall:.2f} s")
    print(f"direct helm wall time: {direct_before:.2f} s before, {direct_after:.2f} s after, mean {direct_wall:.2f} s")
    print(f"ratio console/direct: {console_wall / direct_wall:.2f} (target <= 1.10)")
    print(
        f"Launch POST -> helm started: median {statistics.median(latencies):.3f} s, "
        f"max {max(latencies):.3f} s (target < 1 s for the first; later ones wait for a free worker)"
    )
    print(f"first two launches (workers free) -> helm started: {latencies[0]:.3f} s, {latencies[1]:.3f} s")


if __name__ == "__main__":
    main()
