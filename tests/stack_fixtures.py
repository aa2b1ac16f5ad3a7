"""Fixtures on the real local stack (devstack), shared by the integration and browser tests.

The session fixture brings the stack up once and stops only what it started.
"""

import os

import pytest

from devstack import config, procs, stack


@pytest.fixture(scope="session")
def devstack() -> dict[str, str]:
    """The running local stack's environment for the console (starting it if needed)."""
    already_running = {name for name in stack.PROCESSES if procs.running_pid(name)}
    environment = stack.up()
    yield environment
    if os.environ.get("DEVSTACK_KEEP", "") != "1":
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
