"""Operations stopped by a silent Keycloak or cluster are retried with backoff; the broker records takers."""

import os
import socket

import pytest
from django.utils import timezone
from django_q.models import Schedule
from django_q.signing import SignedPackage

from platforms import reconcile, tasks
from platforms.models import Lease, Operation, Platform
from platforms.services.errors import BadInput, NoAnswer

SILENT_KEYCLOAK = NoAnswer("Keycloak did not answer in time to look up group /platforms (timeout 10s, ReadTimeout).")


@pytest.fixture
def install(platform) -> Operation:
    return Operation.objects.request(platform, Operation.Kind.INSTALL, None)


def test_a_silent_keycloak_queues_the_install_again_in_30_s_saying_so(install, fake_helm, directory):
    directory.error = SILENT_KEYCLOAK
    tasks.run_operation(install.pk)
    install.refresh_from_db()
    assert (install.state, install.retries, install.worker, install.taken_by) == ("queued", 1, "", "")
    assert install.error.endswith("(timeout 10s, ReadTimeout). Retry to set it up. Retry 1 of 3 in 30 s.")
    assert 29 < (install.retry_at - timezone.now()).total_seconds() <= 30
    platform = Platform.objects.get(pk=install.platform_id)
    assert platform.status == "pending"
    assert platform.status_message.startswith("Install did not finish: Helm deployed revision 1, but access in")
    assert platform.status_message.endswith("Retry 1 of 3 in 30 s.")
    retry = Schedule.objects.get(name=f"operation-{install.pk}-retry-1")
    assert (retry.func, retry.args, retry.schedule_type) == ("platforms.tasks.run_operation", f"({install.pk},)", "O")
    assert retry.next_run == install.retry_at


def test_the_wait_doubles_and_after_the_third_retry_the_operation_fails(install, fake_helm, directory):
    directory.error = SILENT_KEYCLOAK
    waits = []
    for _ in range(3):
        tasks.run_operation(install.pk)
        install.refresh_from_db()
        waits.append(round((install.retry_at - timezone.now()).total_seconds()))
    assert waits == [30, 60, 120]
    tasks.run_operation(install.pk)
    install.refresh_from_db()
    assert install.state == "failed"
    assert install.error.endswith("(Tried 4 times.)")
    assert Platform.objects.get(pk=install.platform_id).status == "failed"
    assert Schedule.objects.filter(name__startswith=f"operation-{install.pk}-retry-").count() == 3


def test_a_retry_that_succeeds_says_what_came_before(install, fake_helm, directory):
    directory.error = SILENT_KEYCLOAK
    tasks.run_operation(install.pk)
    directory.error = None
    tasks.run_operation(install.pk)
    install.refresh_from_db()
    assert (install.state, install.error) == ("succeeded", "")
    assert install.output.startswith("Retry 1 of 3 succeeded; before it: Helm deployed revision 1, but access")


def test_a_refusal_is_not_retried(install, fake_helm):
    fake_helm.error = BadInput("Helm refused the chart or its values: no.")
    tasks.run_operation(install.pk)
    install.refresh_from_db()
    assert (install.state, install.retries) == ("failed", 0)
    assert not Schedule.objects.filter(name__startswith=f"operation-{install.pk}-").exists()


def test_a_cluster_that_does_not_answer_helm_is_retried(install, fake_helm):
    fake_helm.error = NoAnswer("The cluster did not answer Helm: Kubernetes cluster unreachable: i/o timeout")
    tasks.run_operation(install.pk)
    install.refresh_from_db()
    assert (install.state, install.retries) == ("queued", 1)


def test_the_worker_records_its_cluster_when_it_starts_an_operation(install, fake_helm):
    tasks.run_operation(install.pk)
    assert Operation.objects.get(pk=install.pk).taken_by == f"{socket.gethostname()}:{os.getppid()}"


# --- The broker's records -----------------------------------------------------------------------------


def payload(func: str, *args) -> bytes:
    return SignedPackage.dumps({"id": "x", "name": "n", "func": func, "args": args, "kwargs": {}})


def test_the_pusher_records_which_cluster_took_a_queued_operation(install, db):
    done = Operation.objects.create(platform=install.platform, kind="upgrade", state="succeeded")
    tasks.record_taker(
        [
            (1, payload("platforms.tasks.run_operation", install.pk)),
            (2, payload("platforms.tasks.run_operation", done.pk)),
            (3, payload("platforms.tasks.sync_links", install.platform_id)),
            (4, b"not a signed package"),
        ],
        "host-a:42",
    )
    assert Operation.objects.get(pk=install.pk).taken_by == "host-a:42"
    assert Operation.objects.get(pk=done.pk).taken_by == ""


class StatusSink:
    """Stands for django-q2's broker under the mixin: set_stat stores the cluster's status."""

    def __init__(self):
        self.saved = 0

    def set_stat(self, key: str, value: str, timeout: int) -> None:
        self.saved += 1


class Broker(tasks.TakerRecording, StatusSink):
    pass


def test_the_sentinel_renews_its_clusters_lease_every_heartbeat_not_every_status(db, settings):
    settings.WORKER_HEARTBEAT_SECONDS, settings.WORKER_LEASE_SECONDS = 60, 10
    broker = Broker()
    for _ in range(5):
        broker.set_stat("stat", "...", 3)
    lease = Lease.objects.get(name=f"{reconcile.WORKER_CLUSTER_LEASE}{socket.gethostname()}:{os.getpid()}")
    assert broker.saved == 5
    assert 9 < (lease.expires_at - timezone.now()).total_seconds() <= 10
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now())
    broker.set_stat("stat", "...", 3)
    assert Lease.objects.get(pk=lease.pk).expires_at <= timezone.now()  # not renewed before the next beat
