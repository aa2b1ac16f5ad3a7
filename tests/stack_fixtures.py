"""Fixtures on the real local stack (devstack), shared by the integration and browser tests.

The session fixture brings the stack up once and stops only what it started.
"""

import os
import random

import pytest
import yaml
from kubernetes import client
from kubernetes import config as kube_config

from devstack import config, procs, stack

# The API server's default NodePort range.
NODE_PORTS = range(30000, 32768)


@pytest.fixture(scope="session")
def devstack() -> dict[str, str]:
    """The running local stack's environment for the console (starting it if needed)."""
    already_running = {name for name in stack.PROCESSES if procs.running_pid(name)}
    environment = stack.up()
    yield environment
    if os.environ.get("DEVSTACK_KEEP", "") == "1":
        return
    if not already_running:
        stack.down()  # all of it was ours: the node too, with its bridge, mounts and rules
        return
    for name in reversed(stack.PROCESSES):
        if name not in already_running:
            procs.stop(name)


@pytest.fixture(scope="session")
def kubeconfig_text(devstack) -> str:
    return config.KUBECONFIG.read_text()


@pytest.fixture(scope="session")
def helm_executable(devstack) -> str:
    return devstack["HELM_EXECUTABLE"]


@pytest.fixture
def real_services(devstack, settings):
    """Point the console's Helm and Kubernetes services at the local stack's helm, uncached."""
    from platforms.services import helm, kube

    settings.HELM_EXECUTABLE = devstack["HELM_EXECUTABLE"]
    settings.APP_CHART_REPO_URL = devstack["APP_CHART_REPO_URL"]
    helm.get_helm.cache_clear()
    kube.get_kube.cache_clear()
    yield
    helm.get_helm.cache_clear()
    kube.get_kube.cache_clear()


@pytest.fixture
def local_cluster(db, kubeconfig_text):
    """The local kube-apiserver registered as a Zenith cluster."""
    from platforms.models import Cluster

    cluster = Cluster(name="local", context="devstack", exposure=Cluster.Exposure.ZENITH, server_version="v1.34.4")
    cluster.kubeconfig = kubeconfig_text
    cluster.save()
    return cluster


def free_node_port(kubeconfig_text: str) -> int:
    """A NodePort no Service on the local stack uses, for a release a test installs without the console.

    Chosen at random from the upper half of the range: the console takes the lowest free port, and
    another test run may be installing platforms on the same stack at the same time.
    """
    api = client.CoreV1Api(kube_config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text)))
    used = {p.node_port for s in api.list_service_for_all_namespaces().items for p in s.spec.ports or [] if p.node_port}
    upper = NODE_PORTS[len(NODE_PORTS) // 2 :]
    return random.choice([port for port in upper if port not in used])
