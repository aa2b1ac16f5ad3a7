"""The health endpoint with Redis as the queue, against a real redis-server (Debian's): ok while it
answers, 503 "queue unavailable" once it is gone or frozen (within the Redis timeout, not forever)."""

import shutil
import signal
import socket
import subprocess
import time

import pytest
from django.test import Client
from django.urls import reverse
from django_q.conf import Conf

from binderadmin import settings as console_settings

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_broker(monkeypatch, tmp_path):
    """A redis-server of this test's own, as the queue (with the settings' timeouts, at 1 s); yields its process."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(console_settings, "REDIS_TIMEOUT_SECONDS", 1)
    monkeypatch.setattr(Conf, "REDIS", console_settings.with_redis_timeouts(f"redis://127.0.0.1:{port}/0"))
    monkeypatch.setattr(Conf, "BROKER_CLASS", "platforms.tasks.TakerRecordingRedis")  # as settings choose it
    yield process
    process.send_signal(signal.SIGCONT)
    process.terminate()
    process.wait(10)


def test_ok_while_redis_answers_and_503_once_it_is_gone(redis_broker):
    client = Client()
    response = client.get(reverse("health"))
    assert (response.status_code, response.content) == (200, b"ok\n")
    redis_broker.terminate()
    redis_broker.wait(10)
    response = client.get(reverse("health"))
    assert (response.status_code, response.content) == (503, b"queue unavailable\n")


def test_a_frozen_redis_is_unavailable_after_its_timeout_not_a_hang(redis_broker):
    client = Client()
    assert client.get(reverse("health")).status_code == 200
    redis_broker.send_signal(signal.SIGSTOP)  # it accepts connections (the kernel does) but never answers
    started = time.monotonic()
    response = client.get(reverse("health"))
    waited = time.monotonic() - started
    assert (response.status_code, response.content) == (503, b"queue unavailable\n")
    assert waited < 5, f"the health check waited {waited:.1f} s for a frozen Redis"
