"""Integration tests: marked, so they can be selected with `-m integration` (make test runs them all)."""

import pytest
import yaml
from kubernetes import config, dynamic

from platforms import tasks


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def apis(kubeconfig_text) -> dynamic.DynamicClient:
    """The local stack's API server, through the kubernetes client's dynamic layer (any kind by name)."""
    return dynamic.DynamicClient(config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text)))


@pytest.fixture
def handed_to_worker(monkeypatch) -> list[int]:
    """Operations the console hands to the worker, captured so the test runs them itself."""
    handed: list[int] = []
    monkeypatch.setattr(tasks, "enqueue_operation", handed.append)
    return handed
