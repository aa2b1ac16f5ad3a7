"""The reconcile pass with in-memory clusters: calls per cluster, decisions per platform, the lock, recovery."""

import logging
import os
import socket
import threading
import time

import pytest
from django.utils import timezone

from platforms import reconcile, tasks
from platforms.access_rules import SERVICES
from platforms.models import Cluster, Lease, Operation, Platform
from platforms.services import helm, kube
from platforms.services.errors import NoAnswer
from platforms.services.types import ClusterAccess, ReleaseInfo, ServiceLinkInfo
from tests.conftest import KUBECONFIG
from tests.fakes import FakeDeployKube, FakeHelm

pytestmark = pytest.mark.django_db


class Clusters(FakeDeployKube):
    """One fake per cluster, told apart by the context of their access; `failing` names clusters
    that do not answer, `hung` those that never answer until released."""

    def __init__(self):
        super().__init__()
        self.failing: set[str] = set()
        self.hung: set[str] = set()
        self.release_hung = threading.Event()
        self.asked: list[tuple[str, str]] = []

    def _ask(self, access: ClusterAccess, what: str) -> None:
        self.asked.append((access.context, what))
        if access.context in self.hung:
            self.release_hung.wait(30)
        if access.context in self.failing:
            raise NoAnswer(f"The cluster's API server could not be reached: {access.context} is down")

    def helm_releases(self, access):
        self._ask(access, "helm_releases")
        return super().helm_releases(access)

    def service_links_by_namespace(self, access, exposure):
        self._ask(access, "service_links_by_namespace")
        return super().service_links_by_namespace(access, exposure)


@pytest.fixture
def clusters(monkeypatch) -> Clusters:
    fake = Clusters()
    monkeypatch.setattr(kube, "get_kube", lambda: fake)
    monkeypatch.setattr(helm, "get_helm", lambda: FakeHelm(fake.cluster))
    return fake


@pytest.fixture
def sent(monkeypatch) -> list[int]:
    handed: list[int] = []
    monkeypatch.setattr(tasks, "enqueue_operation", handed.append)
    # Keycloak's side of the pass (access_repair) has its own tests; these platforms have no access there.
    monkeypatch.setattr(tasks, "repair_lost_access", lambda: None)
    return handed


def make_clusters(count: int = 3) -> list[Cluster]:
    made = []
    for index in range(count):
        cluster = Cluster(name=f"c{index}", context=f"c{index}")
        cluster.kubeconfig = KUBECONFIG
        cluster.save()
        made.append(cluster)
    return made


def make_platforms(clusters: list[Cluster], count: int, fake: Clusters, status: str = "deployed") -> list[Platform]:
    platforms = Platform.objects.bulk_create(
        Platform(name=f"p{index}", cluster=clusters[index % len(clusters)], app_version="0.1.0", status=status)
        for index in range(count)
    )
    for platform in platforms:
        fake.cluster.releases[platform.name] = ReleaseInfo(platform.name, platform.name, 1, "deployed")
    return platforms


def ready(name: str) -> list[ServiceLinkInfo]:
    return [ServiceLinkInfo(service, f"{service}-{name}.zenith.example", True) for service in SERVICES]


@pytest.mark.parametrize("count", [10, 300])
def test_a_pass_asks_each_cluster_the_same_two_listings_whatever_the_number_of_platforms(clusters, sent, count):
    made = make_clusters()
    make_platforms(made, count, clusters)
    Platform.objects.filter(name__in=["p0", "p1", "p2"]).update(status="installing")
    tasks.reconcile()
    per_cluster = {c.name: sorted(what for context, what in clusters.asked if context == c.name) for c in made}
    assert per_cluster == {name: ["helm_releases", "service_links_by_namespace"] for name in ("c0", "c1", "c2")}
    assert Platform.objects.filter(status="failed").count() == 0


def test_a_release_gone_or_failed_on_the_cluster_fails_only_that_platform(clusters, sent):
    made = make_clusters(1)
    make_platforms(made, 3, clusters)
    del clusters.cluster.releases["p1"]
    clusters.cluster.releases["p2"] = ReleaseInfo("p2", "p2", 4, "pending-upgrade")
    tasks.reconcile()
    statuses = dict(Platform.objects.values_list("name", "status_message"))
    assert statuses == {
        "p0": "",
        "p1": "The Helm release is missing from the cluster. Retry to install it again.",
        "p2": "Helm reports the release as pending-upgrade (revision 4). Retry to upgrade it.",
    }


def test_links_found_in_the_cluster_listing_bring_a_follow_up_upgrade(
    clusters, sent, django_capture_on_commit_callbacks
):
    made = make_clusters(1)
    make_platforms(made, 2, clusters, status="installing")
    clusters.cluster.links["p0"] = ready("p0")
    with django_capture_on_commit_callbacks(execute=True):
        tasks.reconcile()
    follow_up = Operation.objects.get(pk=sent[0])
    assert (follow_up.platform.name, follow_up.kind, follow_up.reason) == (
        "p0",
        "upgrade",
        "Set the service addresses Zenith reported",
    )
    assert len(sent) == 1
    waiting = Platform.objects.get(name="p1")
    assert waiting.status_message == "Release deployed; waiting for Zenith to expose BinderHub, JupyterHub."


def test_links_that_match_the_deployed_values_make_the_platform_deployed(clusters, sent):
    made = make_clusters(1)
    (platform,) = make_platforms(made, 1, clusters, status="upgrading")
    clusters.cluster.links["p0"] = ready("p0")
    Platform.objects.filter(pk=platform.pk).update(
        deployed_links={
            "binderhub": "https://binderhub-p0.zenith.example",
            "jupyterhub": "https://jupyterhub-p0.zenith.example",
        }
    )
    tasks.reconcile()
    platform.refresh_from_db()
    assert (platform.status, sent) == ("deployed", [])
    assert platform.ready_links()["jupyterhub"] == "https://jupyterhub-p0.zenith.example"


def test_a_hostile_address_in_the_cluster_listing_is_refused(clusters, sent):
    made = make_clusters(1)
    (platform,) = make_platforms(made, 1, clusters, status="installing")
    clusters.cluster.links["p0"] = [ServiceLinkInfo("jupyterhub", "evil.example/<script>", True)]
    tasks.reconcile()
    platform.refresh_from_db()
    assert "it is not a plain host name" in platform.status_message
    assert platform.ready_links() == {} and sent == []


def test_a_cluster_that_does_not_answer_leaves_the_others_checked(clusters, sent, caplog):
    made = make_clusters()
    make_platforms(made, 6, clusters)
    clusters.cluster.releases.clear()
    clusters.failing.add("c1")
    with caplog.at_level(logging.WARNING):
        tasks.reconcile()
    failed = set(Platform.objects.filter(status="failed").values_list("cluster__name", flat=True))
    assert failed == {"c0", "c2"}
    assert "cluster=c1 not reconciled (2 platforms wait for the next pass)" in caplog.text


def test_a_hung_cluster_is_given_up_after_its_time_limit(clusters, sent, settings, caplog):
    settings.CLUSTER_CHECK_TIMEOUT_SECONDS = 0  # the pass waits 2 * 0 + 1 s for a cluster
    made = make_clusters(2)
    make_platforms(made, 4, clusters)
    clusters.cluster.releases.clear()
    clusters.hung.add("c0")
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING):
            tasks.reconcile()
    finally:
        clusters.release_hung.set()
    assert time.monotonic() - started < 5
    assert set(Platform.objects.filter(status="failed").values_list("cluster__name", flat=True)) == {"c1"}
    assert "cluster=c0 not reconciled (2 platforms wait for the next pass): it did not answer within 1 s" in caplog.text


def test_a_pass_leaves_at_once_while_another_holds_the_lock(clusters, sent, caplog):
    make_platforms(make_clusters(1), 1, clusters)
    Lease.objects.take(reconcile.PASS_LEASE, "other-host:42:abc", 60)
    with caplog.at_level(logging.INFO):
        assert reconcile.run_pass(sent.append, lambda platform: None) is False
    assert clusters.asked == []
    assert "reconcile pass skipped: the pass of other-host:42:abc runs until" in caplog.text
    Lease.objects.filter(name=reconcile.PASS_LEASE).update(expires_at=timezone.now())  # its holder died
    assert reconcile.run_pass(sent.append, lambda platform: None) is True
    assert clusters.asked == [("c0", "helm_releases")]


def test_a_lease_has_one_holder_until_it_expires_or_is_given_back(db):
    assert Lease.objects.take("x", "a", 60)
    assert not Lease.objects.take("x", "b", 60)
    assert Lease.objects.take("x", "a", 60)  # its holder renews it
    Lease.objects.give_back("x", "b")  # not b's to give back
    assert not Lease.objects.take("x", "b", 60)
    Lease.objects.give_back("x", "a")
    assert Lease.objects.take("x", "b", 60)


# --- Recovery of operations ---------------------------------------------------------------------


@pytest.fixture
def queued(platform) -> Operation:
    return Operation.objects.request(platform, Operation.Kind.INSTALL, None)


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_an_operation_taken_by_a_dead_worker_cluster_is_sent_again_once_saying_so(queued, sent, caplog, clusters):
    taker = f"{socket.gethostname()}:{dead_pid()}"
    Operation.objects.filter(pk=queued.pk).update(taken_by=taker)
    with caplog.at_level(logging.WARNING):
        tasks.reconcile()
        tasks.reconcile()
    assert sent == [queued.pk]
    assert f"operation={queued.pk} was taken by worker cluster {taker}, which stopped before starting it" in caplog.text
    assert "left" not in caplog.text
    queued.refresh_from_db()
    assert (queued.state, queued.taken_by) == ("queued", "")


def test_an_operation_taken_by_a_live_worker_cluster_waits_for_it(queued, sent, clusters):
    Operation.objects.filter(pk=queued.pk).update(taken_by=f"{socket.gethostname()}:{os.getpid()}")
    tasks.reconcile()
    assert sent == []


def test_a_worker_cluster_on_another_host_is_dead_once_its_lease_expired(queued, sent, clusters):
    Operation.objects.filter(pk=queued.pk).update(taken_by="other-host:7")
    tasks.reconcile()
    assert sent == []  # never seen: not known to be dead
    Lease.objects.create(name=f"{reconcile.WORKER_CLUSTER_LEASE}other-host:7", holder="x", expires_at=timezone.now())
    tasks.reconcile()
    assert sent == [queued.pk]


def test_an_operation_no_worker_took_is_sent_again_after_the_grace_and_then_not_at_every_pass(
    queued, sent, settings, caplog, clusters
):
    settings.QUEUED_OPERATION_GRACE_SECONDS = 60
    tasks.reconcile()
    assert sent == []
    Operation.objects.filter(pk=queued.pk).update(requested_at=timezone.now() - timezone.timedelta(seconds=90))
    with caplog.at_level(logging.WARNING):
        tasks.reconcile()
        tasks.reconcile()
    assert sent == [queued.pk]
    assert f"operation={queued.pk} waited 90 s without a worker taking it" in caplog.text


def test_a_running_operation_is_not_taken_from_a_worker_on_another_host_by_its_clusters_lease(queued, sent, clusters):
    # Its worker may outlive its cluster: a second helm on the release would undo the first's work.
    Operation.objects.filter(pk=queued.pk).update(
        state="running", worker="other-host:8", taken_by="other-host:7", started_at=timezone.now()
    )
    Lease.objects.create(name=f"{reconcile.WORKER_CLUSTER_LEASE}other-host:7", holder="x", expires_at=timezone.now())
    tasks.reconcile()
    queued.refresh_from_db()
    assert (queued.state, sent) == ("running", [])


def test_a_running_operation_past_the_task_timeout_is_queued_again(queued, sent, clusters, settings):
    long_ago = timezone.now() - timezone.timedelta(seconds=settings.Q_CLUSTER["timeout"] + 61)
    Operation.objects.filter(pk=queued.pk).update(state="running", worker="other-host:8", started_at=long_ago)
    tasks.reconcile()
    queued.refresh_from_db()
    assert (queued.state, queued.worker, sent) == ("queued", "", [queued.pk])
