"""Session fixtures that bring up the real local stack (devstack) once, and stop what they started."""

import os

import pytest

from devstack import config, procs, stack


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


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
