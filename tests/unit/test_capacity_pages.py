"""Capacity on the pages: read at each cluster check, shown on the cluster page, checked by the launch form."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from platforms import capacity
from platforms.models import Cluster, Platform
from platforms.services.errors import BadInput
from platforms.services.types import ClusterCapacity, NodeCapacity
from tests.conftest import KUBECONFIG

SMALL = ClusterCapacity(
    nodes=(NodeCapacity("node-a", 4.0, 16.0, True), NodeCapacity("cordoned", 64.0, 256.0, False)),
    storage_classes=("fast", "standard"),
    default_storage_class="standard",
    requested_cpus=2.0,
    requested_memory_gb=4.0,
)
LAUNCH = {
    "name": "demo2",
    "app_version": "0.2.0",
    "servers_per_user": "1",
    "notebook_cpus": "1",
    "notebook_ram_gb": "2",
    "notebook_storage_gb": "10",
    "registry_storage_gb": "10",
}


@pytest.fixture
def small_cluster(cluster):
    cluster.capacity = capacity.to_json(SMALL)
    cluster.save()
    return cluster


def launch(client, cluster, **overrides):
    return client.post(reverse("platform_create"), {**LAUNCH, "cluster": str(cluster.pk), **overrides})


def test_a_check_reads_the_capacity_and_the_page_shows_it(admin_client, cluster, fake_kube):
    fake_kube.found_capacity = SMALL
    admin_client.post(reverse("cluster_check", args=["prod"]))
    cluster.refresh_from_db()
    assert capacity.from_json(cluster.capacity) == SMALL
    body = admin_client.get(reverse("cluster_detail", args=["prod"])).content.decode()
    assert "the largest with 4 CPUs and 16 GB allocatable" in body  # the cordoned node does not count
    assert "fast, standard (default)" in body


def test_a_kubeconfig_that_may_not_list_nodes_still_checks_and_says_why_capacity_is_unknown(
    admin_client, cluster, fake_kube
):
    fake_kube.found_capacity = BadInput(
        "The cluster refused the request (HTTP 403): check the kubeconfig's permissions."
    )
    response = admin_client.post(reverse("cluster_check", args=["prod"]), headers={"HX-Request": "true"})
    cluster.refresh_from_db()
    assert (cluster.check_error, cluster.capacity) == ("", None)
    assert "Capacity not read: The cluster refused the request (HTTP 403)" in response.content.decode()


def test_registering_reads_the_capacity_and_refuses_a_storage_class_the_cluster_lacks(admin_client, fake_kube):
    fake_kube.found_capacity = SMALL
    data = {"name": "lab", "kubeconfig": KUBECONFIG, "context": "", "exposure": "zenith", "ingress_tls": "on"}
    response = admin_client.post(reverse("cluster_create"), {**data, "storage_class": "gold"})
    assert response.status_code == 200
    assert "The cluster has no StorageClass &#x27;gold&#x27;; it has: fast, standard." in response.content.decode()
    admin_client.post(reverse("cluster_create"), {**data, "storage_class": "fast"})
    assert capacity.from_json(Cluster.objects.get(name="lab").capacity) == SMALL


def test_a_notebook_larger_than_every_node_is_refused_on_the_field_at_fault(
    admin_client, small_cluster, stub_app_versions
):
    response = launch(admin_client, small_cluster, notebook_cpus="8")
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["notebook_cpus"][0].startswith("No node of cluster prod can hold a notebook of 8 CPUs")
    response = launch(admin_client, small_cluster, notebook_ram_gb="32")
    assert "notebook_ram_gb" in response.context["form"].errors
    assert not Platform.objects.filter(name="demo2").exists()


def test_a_change_is_checked_against_the_platforms_own_cluster(
    admin_client, small_cluster, platform, stub_app_versions
):
    data = {k: v for k, v in LAUNCH.items() if k != "name"}
    response = admin_client.post(reverse("platform_edit", args=["demo"]), {**data, "notebook_cpus": "6"})
    assert "No node of cluster prod can hold" in response.content.decode()


def test_a_launch_onto_a_full_cluster_goes_ahead_with_a_warning(admin_client, small_cluster, stub_app_versions):
    small_cluster.capacity["requested_cpus"] = 3.9
    small_cluster.save()
    response = launch(admin_client, small_cluster)
    assert response.status_code == 302
    warnings = [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "warning"]
    assert warnings == [
        "Cluster prod is full: its pods already request 3.9 of 4 CPUs, so new notebooks may wait for room. "
        "The launch goes ahead; add nodes or ask for less to avoid the wait."
    ]


def test_a_cluster_never_read_is_not_checked(admin_client, cluster, stub_app_versions):
    assert cluster.capacity is None
    assert launch(admin_client, cluster, notebook_cpus="16", notebook_ram_gb="64").status_code == 302
