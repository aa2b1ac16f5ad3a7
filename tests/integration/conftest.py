"""Integration tests: marked, so they can be selected with `-m integration` (make test runs them all)."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)
