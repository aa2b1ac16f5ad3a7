"""Real django-q2 workers: a worker killed mid-install is recovered by reconcile; launches race safely;
two workers share the work on either broker (the database, or the local stack's Redis) and run each
operation once."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from django.db import connection
from django.test import Client
from django.urls import reverse
from django_q.conf import Conf

from devstack import config as devstack_config
from platforms import tasks
from platforms.models import Operation, Platform
from platforms.services import charts
from tests.integration.test_deploy import remove_platform

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
REPO = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The test database, as a URL a worker subprocess can use."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(devstack: dict[str, str], log: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, **devstack, "DATABASE_URL": database_url(), "Q_WORKERS": "1", **(extra_env or {})}
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=REPO,
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop(worker: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Signal the worker's whole process group; kill it if it has not stopped within 10 s."""
    try:
        os.killpg(worker.pid, sig)
        worker.wait(10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)


def run_together(target, count: int = 2) -> None:
    """Run `target` in `count` threads at once (the target waits on a barrier to line them up)."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_worker_killed_mid_install_is_recovered_by_reconcile(
    devstack, real_services, local_cluster, admin_user, kubeconfig_text, tmp_path
):
    name = f"kill-{uuid.uuid4().hex[:6]}"
    platform = Platform.objects.create(name=name, cluster=local_cluster, app_version="0.1.0", created_by=admin_user)
    operation = tasks.request_and_enqueue(platform, Operation.Kind.INSTALL, admin_user)
    log = tmp_path / "worker.log"
    first = start_worker(devstack, log)
    try:
        wait_for(lambda: Operation.objects.get(pk=operation.pk).state == "running", 60, "the install to start")
    finally:
        stop(first, signal.SIGKILL)  # the whole worker, mid-install: nothing gets to clean up
    operation.refresh_from_db()
    assert operation.state == "running"  # what a dead worker leaves behind

    def reconciled() -> bool:
        tasks.reconcile()
        return Operation.objects.get(pk=operation.pk).state == "queued"

    wait_for(reconciled, 10, "reconcile to find the dead worker's operation")

    second = start_worker(devstack, log)
    try:
        wait_for(
            lambda: Operation.objects.get(pk=operation.pk).state in ("succeeded", "failed"), 120, "the install to end"
        )
    finally:
        stop(second)
        remove_platform(kubeconfig_text, name)
    operation.refresh_from_db()
    assert operation.state == "succeeded", f"{operation.error}\n{log.read_text()[-3000:]}"


def test_two_launches_of_the_same_platform_at_once_make_one_operation(local_cluster, admin_user, monkeypatch, devstack):
    monkeypatch.setattr(charts, "app_versions", lambda refresh=False: ["0.1.0"])
    monkeypatch.setattr(tasks, "enqueue_operation", lambda operation_id: None)  # no worker in this test
    barrier = threading.Barrier(2)
    statuses = []

    def launch() -> None:
        client = Client()
        client.force_login(admin_user)
        barrier.wait()
        response = client.post(
            reverse("platform_create"),
            {
                "name": "twin",
                "cluster": local_cluster.pk,
                "app_version": "0.1.0",
                "servers_per_user": 3,
                "notebook_cpus": 1,
                "notebook_ram_gb": 2,
                "notebook_storage_gb": 10,
                "registry_storage_gb": 10,
            },
        )
        statuses.append(response.status_code)
        connection.close()

    run_together(launch)
    assert sorted(statuses) == [200, 302]
    assert Platform.objects.filter(name="twin").count() == 1
    assert Operation.objects.filter(platform__name="twin").count() == 1


def test_two_requests_on_one_platform_at_once_make_one_operation(local_cluster, admin_user):
    from platforms.models import PlatformBusy

    platform = Platform.objects.create(name="once", cluster=local_cluster, app_version="0.1.0")
    barrier = threading.Barrier(2)
    outcomes = []

    def request() -> None:
        barrier.wait()
        try:
            Operation.objects.request(platform, Operation.Kind.UPGRADE, admin_user)
            outcomes.append("recorded")
        except PlatformBusy:
            outcomes.append("busy")
        finally:
            connection.close()

    run_together(request)
    assert sorted(outcomes) == ["busy", "recorded"]
    assert platform.operations.count() == 1


# --- Two workers, on the database's queue and on Redis ---------------------------------------------


@pytest.fixture(params=["orm", "redis"])
def broker_env(request, devstack, monkeypatch) -> dict[str, str]:
    """The workers' environment for the broker; this process enqueues onto the same queue.

    Redis gets a queue of this test's own (Q_CLUSTER_NAME): other test runs may share the local
    stack's Redis. django-q2 reads its settings once, at import, hence the patched Conf.
    """
    if request.param == "orm":
        yield {}
        return
    name = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", devstack_config.REDIS_URL)
    monkeypatch.setattr(Conf, "BROKER_CLASS", "platforms.tasks.TakerRecordingRedis")  # as settings choose it
    monkeypatch.setattr(Conf, "PREFIX", name)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", name)
    yield {"REDIS_URL": devstack_config.REDIS_URL, "Q_CLUSTER_NAME": name}
    redis.from_url(devstack_config.REDIS_URL).delete(f"django_q:{name}:q")


@pytest.fixture
def counted_helm(devstack, tmp_path) -> tuple[str, Path]:
    """The stack's helm behind a script that writes down every call: (the script, its call log)."""
    calls = tmp_path / "helm-calls.log"
    calls.touch()
    script = tmp_path / "helm"
    script.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {devstack["HELM_EXECUTABLE"]} "$@"\n')
    script.chmod(0o755)
    return str(script), calls


def installs_of(calls: Path, name: str) -> int:
    """How many times a worker ran `helm upgrade --install` for the release `name`."""
    return sum(1 for line in calls.read_text().splitlines() if line.split()[:2] == ["upgrade", name])


def launch(client: Client, cluster_pk: int, name: str) -> None:
    form = {"name": name, "cluster": cluster_pk, "app_version": "0.1.0", "servers_per_user": 3, "notebook_cpus": 1}
    form |= {"notebook_ram_gb": 2, "notebook_storage_gb": 10, "registry_storage_gb": 10}
    response = client.post(reverse("platform_create"), form)
    assert response.status_code == 302, response.content[:500]


def started_in(log: Path, operation: Operation) -> int:
    """How many times the worker writing `log` started the operation (its operation log entries)."""
    entry = f"platform={operation.platform.name} operation={operation.pk} {operation.kind} started"
    return log.read_text().count(entry)


def remove_platforms(kubeconfig_text: str, names: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda name: remove_platform(kubeconfig_text, name), names))


def test_two_workers_run_twenty_launches_each_once(
    broker_env, counted_helm, devstack, real_services, local_cluster, admin_client, kubeconfig_text, tmp_path
):
    helm, calls = counted_helm
    env = {**broker_env, "HELM_EXECUTABLE": helm}
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = [start_worker(devstack, log, env) for log in logs]
    prefix = f"two-{uuid.uuid4().hex[:4]}"
    names = [f"{prefix}-{i}" for i in range(20)]
    try:
        for name in names:
            launch(admin_client, local_cluster.pk, name)
        operations = Operation.objects.filter(platform__name__startswith=prefix)
        wait_for(lambda: not operations.filter(state__in=["queued", "running"]).exists(), 300, "20 installs to end")
    finally:
        for worker in workers:
            stop(worker)
        remove_platforms(kubeconfig_text, names)
    operations = list(Operation.objects.filter(platform__name__startswith=prefix).select_related("platform"))
    assert len(operations) == 20
    assert [op.error for op in operations if op.state != "succeeded"] == [], logs[0].read_text()[-3000:]
    assert {name: installs_of(calls, name) for name in names} == dict.fromkeys(names, 1)
    starts = [[started_in(log, op) for log in logs] for op in operations]
    assert all(sum(counts) == 1 for counts in starts), starts
    assert all(sum(counts[i] for counts in starts) > 0 for i in range(2)), "one worker ran every operation"


def test_a_worker_killed_mid_install_leaves_the_other_to_finish(
    broker_env, counted_helm, devstack, real_services, local_cluster, admin_user, kubeconfig_text, tmp_path
):
    """Neither broker hands a task taken by a dead worker to another (Redis pops it; the ORM broker
    waits out its lease): the scheduled reconcile, played here by the test, re-enqueues it."""
    helm, calls = counted_helm
    env = {**broker_env, "HELM_EXECUTABLE": helm}
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = [start_worker(devstack, log, env) for log in logs]
    name = f"half-{uuid.uuid4().hex[:6]}"
    platform = Platform.objects.create(name=name, cluster=local_cluster, app_version="0.1.0", created_by=admin_user)
    operation = tasks.request_and_enqueue(platform, Operation.Kind.INSTALL, admin_user)
    try:
        wait_for(lambda: installs_of(calls, name) == 1, 60, "helm to start installing")
        operation.refresh_from_db()
        first_worker = operation.worker
        # The qcluster's processes share its process group, whose id is the qcluster's pid.
        victim = [os.getpgid(int(first_worker.partition(":")[2])) == worker.pid for worker in workers].index(True)
        stop(workers[victim], signal.SIGKILL)  # the worker and its helm, mid-install
        operation.refresh_from_db()
        assert operation.state == "running"

        def reconciled() -> bool:
            tasks.reconcile()
            current = Operation.objects.get(pk=operation.pk)
            return (current.state, current.worker) != ("running", first_worker)

        wait_for(reconciled, 10, "reconcile to hand the dead worker's install on")
        wait_for(
            lambda: Operation.objects.get(pk=operation.pk).state in ("succeeded", "failed"), 120, "the install to end"
        )
    finally:
        for worker in workers:
            stop(worker)
        remove_platform(kubeconfig_text, name)
    operation.refresh_from_db()
    survivor = 1 - victim
    assert operation.state == "succeeded", f"{operation.error}\n{logs[survivor].read_text()[-3000:]}"
    assert operation.worker != first_worker
    assert installs_of(calls, name) == 2  # the interrupted one and the survivor's
    assert started_in(logs[victim], operation) == 1
    assert started_in(logs[survivor], operation) == 1
