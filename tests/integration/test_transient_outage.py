"""A launch while the real Keycloak is frozen (SIGSTOP) is queued again visibly, and its retry succeeds."""

import os
import signal
import threading
import time
import uuid

import pytest
from django.db import connection
from django_q.models import Schedule

from devstack import procs
from platforms import tasks
from platforms.models import Operation, Platform
from platforms.services import keycloak
from tests.integration.test_deploy import remove_platform
from tests.stack_fixtures import free_node_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
FROZEN_SECONDS = 3  # the shared Keycloak: others' calls (10 s timeouts) only wait


@pytest.fixture
def impatient_keycloak(settings):
    """The console's Keycloak client waits 1 s for an answer."""
    settings.KEYCLOAK_TIMEOUT_SECONDS = 1
    keycloak.get_directory.cache_clear()
    yield
    keycloak.get_directory.cache_clear()


def test_a_launch_while_keycloak_is_frozen_is_retried_and_then_succeeds(
    devstack, real_services, impatient_keycloak, local_cluster, admin_user, kubeconfig_text
):
    name = f"frozen-{uuid.uuid4().hex[:6]}"
    platform = Platform.objects.create(
        name=name, cluster=local_cluster, app_version="0.1.0", registry_node_port=free_node_port(kubeconfig_text)
    )
    operation = Operation.objects.request(platform, Operation.Kind.INSTALL, admin_user)
    pid = procs.running_pid("keycloak")
    assert pid, "the local stack's Keycloak is not running"
    group = os.getpgid(pid)  # kc.sh and the java it starts

    def launch() -> None:
        try:
            tasks.run_operation(operation.pk)
        finally:
            connection.close()

    worker = threading.Thread(target=launch)
    try:
        os.killpg(group, signal.SIGSTOP)
        try:
            worker.start()
            time.sleep(FROZEN_SECONDS)
        finally:
            os.killpg(group, signal.SIGCONT)
        worker.join(300)
        operation.refresh_from_db()
        assert (operation.state, operation.retries) == ("queued", 1), operation.error
        assert "Keycloak did not answer in time" in operation.error
        assert operation.error.endswith("Retry 1 of 3 in 30 s.")
        message = Platform.objects.get(pk=platform.pk).status_message
        assert message.startswith("Install did not finish: ") and message.endswith("Retry 1 of 3 in 30 s.")
        retry = Schedule.objects.get(name=f"operation-{operation.pk}-retry-1")
        assert retry.next_run == operation.retry_at
        tasks.run_operation(operation.pk)  # what the schedule runs when it is due
        operation.refresh_from_db()
        assert operation.state == "succeeded", operation.error
        assert operation.output.startswith("Retry 1 of 3 succeeded; before it: ")
    finally:
        remove_platform(kubeconfig_text, name)
