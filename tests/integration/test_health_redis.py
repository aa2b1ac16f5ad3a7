"""The health endpoint with Redis as the queue, against a real redis-server (Debian's): ok while it
answers, 503 "queue unavailable" once it is gone."""

import shutil
import socket
import subprocess
import time

import pytest
from django.test import Client
from django.urls import reverse
from django_q.conf import Conf

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_broker(monkeypatch, tmp_path):
    """A redis-server of this test's own, as the queue; yields a function that stops it."""
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
    monkeypatch.setattr(Conf, "REDIS", f"redis://127.0.0.1:{port}/0")
    monkeypatch.setattr(Conf, "BROKER_CLASS", "platforms.tasks.TakerRecordingRedis")  # as settings choose it

    def stop() -> None:
        process.terminate()
        process.wait(10)

    yield stop
    if process.poll() is None:
        stop()


def test_ok_while_redis_answers_and_503_once_it_is_gone(redis_broker):
    client = Client()
    response = client.get(reverse("health"))
    assert (response.status_code, response.content) == (200, b"ok\n")
    redis_broker()
    response = client.get(reverse("health"))
    assert (response.status_code, response.content) == (503, b"queue unavailable\n")
