"""Ten SIGKILL trials: a launch a dead worker took but never started runs again at the next reconcile, once.

Each trial starts a real worker (`manage.py qcluster`, the database broker, one worker process), keeps
its worker busy, queues a launch, waits until the worker cluster has taken the launch's task into its
memory (the broker records the taker), SIGKILLs the whole cluster, and runs one reconcile pass. The
next trial's worker then runs the launch. The first five trials find the dead cluster by its process
(same host); the last five as from another host, by its lease running out.
"""

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.tasks import async_task

from platforms import reconcile, tasks
from platforms.models import Operation, Platform
from tests.integration import test_worker
from tests.integration.test_deploy import remove_platform
from tests.stack_fixtures import free_node_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
REPO = Path(__file__).resolve().parents[2]
TRIALS = 10
LEASE_SECONDS = 4


def start_worker(devstack: dict[str, str], log: Path) -> subprocess.Popen:
    """A worker whose cluster renews its lease every second, so a lease expires within the test."""
    lease = {"WORKER_HEARTBEAT_SECONDS": "1", "WORKER_LEASE_SECONDS": str(LEASE_SECONDS)}
    return test_worker.start_worker(devstack, log, extra_env=lease)


def mark_and_sleep(path: str, seconds: float) -> None:
    """A task that says it started (a file appears), then keeps its worker busy."""
    Path(path).touch()
    time.sleep(seconds)


def wait_for(predicate, timeout: float, what: str) -> float:
    """Seconds until predicate() held; AssertionError after timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill(worker: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)


def test_a_launch_a_killed_worker_took_but_never_started_runs_again_once(
    devstack, real_services, local_cluster, admin_user, tmp_path, monkeypatch, caplog, kubeconfig_text
):
    log = tmp_path / "worker.log"
    names = [f"lost-{uuid.uuid4().hex[:6]}" for _ in range(TRIALS)]
    operations: list[Operation] = []
    resent_after: list[float] = []
    worker = start_worker(devstack, log)
    try:
        for trial, name in enumerate(names):
            # Keep the worker busy: the launch's task then waits in the worker cluster's memory. The
            # launch is sent once the busy task runs: a broker need not hand out tasks in order.
            started = tmp_path / f"busy-{trial}"
            async_task("tests.integration.test_lost_tasks.mark_and_sleep", str(started), 60, task_name=f"busy-{trial}")
            wait_for(started.exists, 60, "the worker to start its busy task")
            # A random free port: other test runs on the stack pick the lowest free one at the same time.
            port = free_node_port(kubeconfig_text)
            platform = Platform.objects.create(
                name=name, cluster=local_cluster, app_version="0.1.0", registry_node_port=port
            )
            operation = tasks.request_and_enqueue(platform, Operation.Kind.INSTALL, admin_user)
            operations.append(operation)
            pk = operation.pk
            wait_for(lambda pk=pk: Operation.objects.get(pk=pk).taken_by, 60, "the worker to take the launch")
            assert Operation.objects.get(pk=pk).state == "queued"
            kill(worker)
            killed_at = time.monotonic()

            def resent(pk: int = pk) -> bool:
                tasks.reconcile()
                if Operation.objects.get(pk=pk).taken_by:
                    time.sleep(0.5)
                    return False
                return True

            with monkeypatch.context() as patch, caplog.at_level(logging.WARNING):
                if trial >= TRIALS // 2:  # as seen from another host: only the lease tells
                    patch.setattr(reconcile.socket, "gethostname", lambda: "another-host")
                wait_for(resent, 60, "reconcile to send the launch again")
            resent_after.append(time.monotonic() - killed_at)
            assert f"operation={operation.pk} was taken by worker cluster {socket.gethostname()}:" in caplog.text
            worker = start_worker(devstack, log)
            wait_for(lambda pk=pk: Operation.objects.get(pk=pk).state in ("succeeded", "failed"), 120, "the launch")
    finally:
        kill(worker)
        for name in names:
            remove_platform(kubeconfig_text, name)
    for operation in operations:
        operation.refresh_from_db()
        assert (operation.state, operation.helm_revision) == ("succeeded", 1), f"{operation.error}\n{log.read_text()}"
        assert operation.started_at - operation.requested_at < timezone.timedelta(minutes=1)
    assert "was left running" not in caplog.text  # they never started before the kill
    # One reconcile interval (a minute) is the target; the same host notices at once, another by the lease.
    assert max(resent_after) < 60
    print("seconds from the kill to the launch sent again:", [round(seconds, 1) for seconds in resent_after])
