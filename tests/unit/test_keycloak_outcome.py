"""What the Keycloak adapter claims when no answer comes: nothing changed, or an outcome it cannot know.

A small local HTTP server stands in for Keycloak, so requests and python-keycloak raise what they
raise in production: a refused connection, or a read timeout after the request was sent.
"""

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from platforms.services.errors import OutcomeUnknown, Unavailable
from platforms.services.keycloak import GroupDirectory

REALM = "test"


class StandIn(BaseHTTPRequestHandler):
    """Answers the token request and the reads of an add; `hang` holds the answers to these paths."""

    hang: frozenset[str] = frozenset()
    release = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer({"access_token": "token", "expires_in": 300, "token_type": "Bearer"})

    def do_GET(self) -> None:
        if "/group-by-path/" in self.path:
            self._answer({"id": "group-1", "name": "demo", "path": "/platforms/demo"})
        else:
            self._answer({"id": "user-1", "username": "bob", "enabled": True})

    def do_PUT(self) -> None:
        self._answer(None)

    def _answer(self, body: dict | None) -> None:
        if any(part in self.path for part in self.hang):
            self.release.wait(10)
            return
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(200 if body is not None else 204)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[type[StandIn]]:
    handler = type("Handler", (StandIn,), {"release": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield handler
    handler.release.set()
    server.shutdown()
    server.server_close()


def directory_at(url: str) -> GroupDirectory:
    return GroupDirectory(url, REALM, "console", "secret", timeout=1)


def test_an_add_whose_answer_never_comes_is_of_unknown_outcome(stand_in):
    stand_in.hang = frozenset({"/users/user-1/groups/"})  # Keycloak took the PUT and never answered
    with pytest.raises(OutcomeUnknown) as raised:
        directory_at(stand_in.url).add_member("/platforms/demo", "user-1")
    message = str(raised.value)
    assert "add bob to /platforms/demo" in message and "ReadTimeout" in message
    assert "may or may not have been made" in message and "nothing was changed" not in message


def test_a_read_that_times_out_before_an_add_changed_nothing(stand_in):
    stand_in.hang = frozenset({"/group-by-path/"})
    with pytest.raises(Unavailable) as raised:
        directory_at(stand_in.url).add_member("/platforms/demo", "user-1")
    assert not isinstance(raised.value, OutcomeUnknown)
    assert "nothing was changed there" in str(raised.value)


def test_a_token_request_that_times_out_before_an_add_changed_nothing(stand_in):
    directory = directory_at(stand_in.url)
    directory.find_group("/platforms/demo")  # signed in
    # The token has expired: python-keycloak asks for a new one before the PUT, and that hangs.
    directory._admin.connection._expires_at = directory._admin.connection.expires_at.replace(year=2000)
    stand_in.hang = frozenset({"/protocol/openid-connect/token"})
    with pytest.raises(Unavailable) as raised, directory._asking("add bob to /platforms/demo", write=True):
        directory._admin.group_user_add("user-1", "group-1")
    assert not isinstance(raised.value, OutcomeUnknown)
    assert "nothing was changed there" in str(raised.value)


def test_a_refused_connection_changed_nothing():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again at once: nothing listens there
    directory = directory_at(f"http://127.0.0.1:{port}")
    with pytest.raises(Unavailable) as raised, directory._asking("add bob to /platforms/demo", write=True):
        directory._admin.group_user_add("user-1", "group-1")
    assert not isinstance(raised.value, OutcomeUnknown)
    assert "nothing was changed there" in str(raised.value) and "ConnectionError" in str(raised.value)
