"""Benchmark: 10 platforms deployed through the console (2 workers) vs the same 10 helm commands.

Run with the local stack up:  .venv/bin/python bench/deploy_ten.py [--pairs 2]
It uses its own SQLite database, starts a real `manage.py qcluster` with 2 workers (DEBUG off, as
in production), waits until both worker processes are ready and warms them with one untimed launch
each. Then direct and console parts alternate (D C D C D with 2 pairs),
each on a settled cluster (no namespace being deleted) and each removed again after it:
  - a direct part runs the 10 `helm upgrade --install` commands itself, 2 at a time, as a person
    would (helm's defaults; --direct-like-console leaves out helm's OpenAPI check as the console
    does by default, settings.HELM_OPENAPI_VALIDATION, to show the console's own cost alone);
  - a console part POSTs the launch form 10 times and waits until every install succeeded.
The machine's speed drifts from minute to minute, so each console part is compared with the mean
of the direct parts before and after it. It prints:
  - each part's wall time, each console part's ratio, and the overall ratio (target <= 1.10);
  - the CPU seconds each kind of part cost the machine, helm, the worker, Keycloak and the cluster;
  - the time from each Launch POST to helm starting (the operation's started_at; target < 1 s).
"""

import argparse
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
    # As in production: DEBUG logs every SQL query of the web side and the worker.
    os.environ["DJANGO_DEBUG"] = "false"
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


class Console:
    """The console's side: a signed-in admin, the local cluster registered, the worker started."""

    def __init__(self) -> None:
        from django.contrib.auth.models import User
        from django.test import Client

        from devstack import config
        from platforms.models import Cluster

        admin = User.objects.create_user("bench-admin", is_staff=True)
        self.cluster = Cluster(name="local", context="devstack")
        self.cluster.kubeconfig = config.KUBECONFIG.read_text()
        self.cluster.save()
        self.client = Client()
        self.client.force_login(admin)
        self.worker = start_worker()
        wait_until_ready(self.worker)  # as a production worker has long been

    def launch(self, prefix: str, count: int = COUNT) -> tuple[float, list[float]]:
        """POST the launch form `count` times; wait until every install succeeded. Wall time and POST -> helm start."""
        from platforms.models import Operation, Platform

        posted_at: dict[str, float] = {}
        start = time.time()
        for i in range(count):
            name = f"{prefix}{i}"
            data = {
                "name": name,
                "cluster": self.cluster.pk,
                "app_version": "0.1.0",
                "servers_per_user": 3,
                "notebook_cpus": 1,
                "notebook_ram_gb": 2,
                "notebook_storage_gb": 10,
                "registry_storage_gb": 10,
            }
            posted_at[name] = time.time()
            response = self.client.post("/launch/", data)
            assert response.status_code == 302, response.content[:500]
        installs = Operation.objects.filter(kind="install", platform__name__startswith=prefix)
        while installs.exclude(state__in=["succeeded", "failed"]).exists() or installs.count() < count:
            time.sleep(0.1)
        wall = time.time() - start
        failed = list(installs.filter(state="failed").values_list("platform__name", "error"))
        assert not failed, failed
        in_post_order = sorted(installs.select_related("platform"), key=lambda op: posted_at[op.platform.name])
        latencies = [op.started_at.timestamp() - posted_at[op.platform.name] for op in in_post_order]
        # The bench removes the releases itself (cleanup): the console forgets them first, so that no
        # link sync or reconcile of the worker looks for them during the next part.
        Platform.objects.filter(name__startswith=prefix).delete()
        return wall, latencies

    def stop(self) -> None:
        os.killpg(self.worker.pid, signal.SIGTERM)
        try:
            self.worker.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.worker.pid, signal.SIGKILL)


def free_node_ports(kubeconfig: str, count: int) -> list[int]:
    """The lowest `count` NodePorts no Service uses, as the console would pick them one by one."""
    import yaml
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(Path(kubeconfig).read_text())))
    services = core.list_service_for_all_namespaces().items
    used = {port.node_port for service in services for port in service.spec.ports or [] if port.node_port}
    return [port for port in range(30000, 32768) if port not in used][:count]


def direct_run(prefix: str, helm: str, kubeconfig: str, repo: str, extra: list[str]) -> float:
    """The same 10 installs as `helm upgrade --install` (with `extra` flags), 2 at a time (as 2 workers run them)."""
    from platforms.values import ValuesInput, build_values

    node_ports = free_node_ports(kubeconfig, COUNT)

    def one(i: int) -> None:
        name = f"{prefix}{i}"
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
             "--kubeconfig", kubeconfig, "--output", "json", *extra],
            check=True, capture_output=True,
        )  # fmt: skip

    start = time.time()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, range(COUNT)))
    return time.time() - start


def core_api(kubeconfig: str):
    import yaml
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(Path(kubeconfig).read_text())))


def cleanup(prefix: str, helm: str, kubeconfig: str, count: int = COUNT) -> None:
    """Remove a part's releases, namespaces and (for the console's) Keycloak clients and groups."""
    from kubernetes import client

    from platforms import provisioning
    from platforms.services.errors import ServiceError

    core = core_api(kubeconfig)

    def one(i: int) -> None:
        name = f"{prefix}{i}"
        subprocess.run([helm, "uninstall", name, "-n", name, "--kubeconfig", kubeconfig], capture_output=True)
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(name)
        with contextlib.suppress(ServiceError):
            provisioning.remove_platform_access(name)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, range(count)))


def settle(kubeconfig: str, timeout: float = 300) -> None:
    """Wait until no namespace is being deleted, then a few seconds more: each part starts on a quiet cluster.

    The controller-manager finalizing one part's namespaces would otherwise share the CPU with the next part.
    """
    core = core_api(kubeconfig)
    deadline = time.monotonic() + timeout
    while any(ns.status.phase == "Terminating" for ns in core.list_namespace().items):
        if time.monotonic() > deadline:
            raise SystemExit("namespaces are still being deleted after 5 minutes")
        time.sleep(1)
    time.sleep(SETTLE_SECONDS)


SETTLE_SECONDS = 5


def machine_cpu() -> tuple[float, float]:
    """Busy and idle CPU seconds of the whole machine since boot (/proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / ticks, idle / ticks


def process_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of process `pid` itself and of its children it has waited for (0, 0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / ticks
    children = (int(fields[13]) + int(fields[14])) / ticks
    return own, children


def tree(pid: int) -> list[int]:
    """Process `pid` and its living descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parent = int(entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(parents.get(current, []))
    return found


def cpu_snapshot(worker_pid: int) -> dict[str, float]:
    """CPU seconds so far: the machine, helm (waited-for children of the bench and of the workers),
    the bench itself, the console's worker processes, Keycloak, and the API server with etcd and the controllers."""
    from devstack import procs

    busy, idle = machine_cpu()
    snapshot = {"machine busy": busy, "machine idle": idle, "helm": 0.0, "console worker": 0.0}
    bench = os.times()
    snapshot["helm"] += bench.children_user + bench.children_system
    # The bench's own process: in a console part, the launch POSTs (the web side) and the waiting.
    snapshot["bench (web requests)"] = bench.user + bench.system
    for pid in tree(worker_pid):
        own, children = process_cpu(pid)
        snapshot["console worker"] += own
        snapshot["helm"] += children
    for label, names in STACK_PROCESSES.items():
        snapshot[label] = sum(
            process_cpu(pid)[0] for name in names if (root := procs.running_pid(name)) for pid in tree(root)
        )
    return snapshot


STACK_PROCESSES = {
    "keycloak": ("keycloak",),
    "api server, etcd, controllers": ("kube-apiserver", "etcd", "kube-controller-manager", "volume-binder"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2, help="console parts, each between two direct parts")
    parser.add_argument(
        "--direct-like-console",
        action="store_true",
        help="the direct parts leave out helm's OpenAPI check as the console does: the console's own cost alone",
    )
    args = parser.parse_args()
    extra = ["--disable-openapi-validation"] if args.direct_like_console else []
    environment = setup_django()
    from devstack import config

    prefix = f"b{uuid.uuid4().hex[:4]}"
    # The console's helm, which on the local stack is devstack's helm-without-node (it pauses the
    # Deployments no pod can serve): the direct run pays for the same post-renderer, so the ratio is fair.
    helm, kubeconfig, repo = environment["HELM_EXECUTABLE"], str(config.KUBECONFIG), environment["APP_CHART_REPO_URL"]
    settle(kubeconfig)
    console = Console()
    # Untimed, one launch for each worker process: a production console's workers, and the Keycloak
    # code paths they call, have long been warm (the first launches after a start cost more).
    console.launch(f"{prefix}-warm-", 2)
    cleanup(f"{prefix}-warm-", helm, kubeconfig, 2)
    walls: dict[str, list[float]] = {"direct": [], "console": []}
    cpu: dict[str, dict[str, float]] = {"direct": {}, "console": {}}
    latencies: list[float] = []
    try:
        # Direct and console parts alternate, each on a settled cluster: D C D C D with --pairs 2.
        for index, kind in enumerate(["direct", "console"] * args.pairs + ["direct"]):
            part = f"{prefix}-{kind[0]}{index}-"
            settle(kubeconfig)
            before = cpu_snapshot(console.worker.pid)
            if kind == "direct":
                wall = direct_run(part, helm, kubeconfig, repo, extra)
            else:
                wall, part_latencies = console.launch(part)
                latencies += part_latencies
            after = cpu_snapshot(console.worker.pid)
            for key in after:
                cpu[kind][key] = cpu[kind].get(key, 0.0) + after[key] - before[key]
            walls[kind].append(wall)
            print(f"part {index + 1}: {kind:7} {wall:6.2f} s", flush=True)
            cleanup(part, helm, kubeconfig)
    finally:
        console.stop()
    # Each console part against the mean of the direct parts before and after it: the machine's speed drifts.
    ratios = [
        console_wall / ((walls["direct"][i] + walls["direct"][i + 1]) / 2)
        for i, console_wall in enumerate(walls["console"])
    ]
    direct_mean = statistics.mean(
        (walls["direct"][i] + walls["direct"][i + 1]) / 2 for i in range(len(walls["console"]))
    )
    console_mean = statistics.mean(walls["console"])
    print(f"platforms: {COUNT} a part, workers: 2, helm concurrency for the direct parts: 2, pairs: {args.pairs}")
    print(f"direct helm: plain `helm upgrade --install --atomic`{' --disable-openapi-validation' if extra else ''}")
    print(f"console parts: {', '.join(f'{wall:.2f}' for wall in walls['console'])} s")
    print(f"direct parts: {', '.join(f'{wall:.2f}' for wall in walls['direct'])} s")
    print(f"ratio of each console part to the direct parts around it: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"ratio console/direct: {console_mean / direct_mean:.2f} (target <= 1.10)")
    print("CPU seconds a part (mean), direct vs console:")
    parts = {kind: len(walls[kind]) for kind in walls}
    for key in cpu["console"]:
        direct_cpu, console_cpu = cpu["direct"][key] / parts["direct"], cpu["console"][key] / parts["console"]
        print(f"  {key:31} {direct_cpu:7.2f} {console_cpu:7.2f}")
    print(
        f"Launch POST -> helm started: median {statistics.median(latencies):.3f} s, "
        f"max {max(latencies):.3f} s (target < 1 s for the first; later ones wait for a free worker)"
    )
    print(f"first two launches (workers free) -> helm started: {latencies[0]:.3f} s, {latencies[1]:.3f} s")


if __name__ == "__main__":
    main()
