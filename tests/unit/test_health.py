"""The health endpoint and the worker's health command: what the probes see when a check passes or fails."""

import socket

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.test import Client, override_settings
from django.urls import reverse
from django_q.conf import Conf

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def broken_database(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError('connection to server at "db.internal" (10.0.0.5), port 5432 failed')

    monkeypatch.setattr(connection, "cursor", refuse)


@pytest.fixture
def unreachable_redis(monkeypatch):
    """The Redis broker at a port that refuses connections: the real broker code meets a real refusal."""
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", f"redis://:hunter2@127.0.0.1:{closed_port()}/0")
    monkeypatch.setattr(Conf, "BROKER_CLASS", "platforms.tasks.TakerRecordingRedis")


def test_anyone_gets_ok_when_the_database_and_the_queue_answer(django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        response = Client().get(reverse("health"))
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert response["Content-Type"] == "text/plain"
    assert "no-cache" in response["Cache-Control"]


def test_a_database_that_does_not_answer_is_503_without_its_details(broken_database):
    response = Client().get(reverse("health"))
    assert response.status_code == 503
    # With the database as the broker, the queue is gone with it.
    assert response.content == b"database unavailable\nqueue unavailable\n"


def test_a_queue_that_does_not_answer_is_503_without_its_address_or_password(unreachable_redis):
    response = Client().get(reverse("health"))
    assert response.status_code == 503
    assert response.content == b"queue unavailable\n"


def test_only_get_is_answered():
    assert Client().post(reverse("health")).status_code == 405


@override_settings(SECURE_SSL_REDIRECT=True)
def test_the_probe_over_plain_http_is_not_redirected_to_https_while_pages_are():
    client = Client()
    assert client.get(reverse("health")).status_code == 200
    assert client.get(reverse("platform_list")).status_code == 301


def test_the_worker_command_says_ok(capsys):
    call_command("health")
    assert capsys.readouterr().out.strip() == "ok"


def test_the_worker_command_fails_with_the_reasons(unreachable_redis):
    with pytest.raises(CommandError, match="^queue unavailable$"):
        call_command("health")
