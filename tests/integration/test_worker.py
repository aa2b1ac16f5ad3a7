"""A real django-q2 worker: a worker killed mid-install is recovered by reconcile; launches race safely."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

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


def start_worker(devstack: dict[str, str], log: Path) -> subprocess.Popen:
    env = {**os.environ, **devstack, "DATABASE_URL": database_url(), "Q_WORKERS": "1"}
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
