"""Expiry on the real stack: a real worker's scheduled pass uninstalls a platform past its expiry with
the real helm and kube-apiserver, and two passes at once on the test database ask for one uninstall."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule
from kubernetes import client

from platforms import expiry, tasks
from platforms.models import AuditEvent, Cluster, Operation, Platform
from tests.conftest import KUBECONFIG
from tests.integration.test_deploy import core, helm_cli, remove_platform
from tests.integration.test_worker import run_together, start_worker, stop, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def due_now(name: str) -> None:
    """Make the worker's scheduler run the expiry pass at its next look (about every 30 s), not a minute later."""
    Schedule.objects.filter(name=name).update(next_run=timezone.now() - timedelta(seconds=1))


def test_a_platform_past_its_expiry_is_uninstalled_by_the_worker(
    devstack, real_services, local_cluster, admin_user, kubeconfig_text, tmp_path
):
    name = f"exp-{uuid.uuid4().hex[:6]}"
    # The schedule migration 0011 makes (a transactional test's database starts empty of it).
    Schedule.objects.update_or_create(
        name="binderadmin-expiry",
        defaults={"func": "platforms.tasks.expire_platforms", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )
    platform = Platform.objects.create(name=name, cluster=local_cluster, app_version="0.1.0", created_by=admin_user)
    log = tmp_path / "worker.log"
    worker = start_worker(devstack, log)
    try:
        install = tasks.request_and_enqueue(platform, Operation.Kind.INSTALL, admin_user)
        wait_for(lambda: Operation.objects.get(pk=install.pk).state in ("succeeded", "failed"), 180, "the install")
        install.refresh_from_db()
        assert install.state == "succeeded", f"{install.error}\n{log.read_text()[-3000:]}"
        assert name in helm_cli(kubeconfig_text, "list", "-n", name, "-q").split()
        # The day chosen at launch ended a minute ago.
        Platform.objects.filter(pk=platform.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
        due_now("binderadmin-expiry")
        wait_for(lambda: not Platform.objects.filter(pk=platform.pk).exists(), 240, "the worker to remove it")
    finally:
        stop(worker)
        remove_platform(kubeconfig_text, name)  # only if the test failed before: nothing is left otherwise
    worker_log = log.read_text()
    assert f"expired platforms to uninstall: {name}" in worker_log
    assert f"platform={name} operation=" in worker_log and " uninstall succeeded" in worker_log
    day = expiry.day_of(timezone.now() - timedelta(minutes=1))
    expired = AuditEvent.objects.get(action="platform.expire", target=name)
    assert (expired.actor, expired.detail) == (None, f"expired on {day:%Y-%m-%d}; uninstall requested")
    # Gone from the cluster: the release, and the namespace with everything in it.
    assert name not in helm_cli(kubeconfig_text, "list", "--all-namespaces", "-q").split()
    with pytest.raises(client.ApiException) as gone:
        core(kubeconfig_text).read_namespace(name)
    assert gone.value.status == 404


def test_two_passes_at_once_request_one_uninstall(monkeypatch):
    """Two workers' passes find the same expired platform at the same moment: one asks, the other
    finds it asked (the row lock on PostgreSQL, IMMEDIATE transactions on SQLite)."""
    monkeypatch.setattr(tasks, "enqueue_operation", lambda operation_id: None)  # no worker in this test
    cluster = Cluster(name="elsewhere")
    cluster.kubeconfig = KUBECONFIG
    cluster.save()
    platform = Platform.objects.create(
        name="twice", cluster=cluster, app_version="0.1.0", expires_at=timezone.now() - timedelta(minutes=1)
    )
    barrier = threading.Barrier(2)
    asked: list[list[str]] = []

    def one_pass() -> None:
        barrier.wait()
        try:
            asked.append(expiry.run_pass(request=tasks.request_and_enqueue))
        finally:
            connection.close()

    run_together(one_pass)
    assert sorted(asked) == [[], ["twice"]]
    assert platform.operations.get().kind == Operation.Kind.UNINSTALL
    assert AuditEvent.objects.filter(action="platform.expire", target="twice").count() == 1
