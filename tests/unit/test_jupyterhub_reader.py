"""The hub usage reader against a loopback HTTP server that answers as a hub might, or as a broken one."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from platforms.services import jupyterhub
from platforms.services.errors import NoAnswer, Unavailable
from platforms.services.jupyterhub import HubUsage, HubUsageReader


def user(name: str, *ready: bool) -> dict:
    servers = {
        f"s{i}": {"name": f"s{i}", "ready": state, "pending": None if state else "spawn"}
        for i, state in enumerate(ready)
    }
    return {"kind": "user", "name": name, "servers": servers}


def page(items: list, next_offset: int | None = None) -> dict:
    following = None if next_offset is None else {"offset": next_offset, "limit": 200, "url": "http://elsewhere/"}
    return {"items": items, "_pagination": {"offset": 0, "limit": 200, "total": len(items), "next": following}}


class FakeHub(ThreadingHTTPServer):
    """Answers GET /hub/api/users with `answer(query) -> (status, headers, body)`; records each request."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.answer = lambda query: (200, {}, page([]))
        self.requests: list[tuple[dict, dict]] = []
        self.delay = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        self.server.requests.append((query, dict(self.headers)))
        time.sleep(self.server.delay)
        status, headers, body = self.server.answer(query) if parts.path == "/hub/api/users" else (404, {}, {})
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub():
    server = FakeHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


reader = HubUsageReader(timeout=2)


def test_counts_active_users_and_the_servers_that_are_ready(hub):
    hub.answer = lambda query: (200, {}, page([user("ann", True, True), user("ben", True), user("cat", False)]))
    assert reader.read(hub.url, "t0ken") == HubUsage(active_users=3, servers=3)
    query, headers = hub.requests[0]
    assert query == {"state": "active", "offset": "0", "limit": "200"}
    assert headers["Authorization"] == "token t0ken"
    assert headers["Accept"] == "application/jupyterhub-pagination+json"


def test_follows_the_pages_at_its_own_address_never_the_one_the_hub_offers(hub):
    pages = {"0": page([user("ann", True)], next_offset=200), "200": page([user("ben", True), user("ann", True)])}
    hub.answer = lambda query: (200, {}, pages[query["offset"]])
    # ann moved to the next page between the two reads: counted once.
    assert reader.read(hub.url, "t") == HubUsage(active_users=2, servers=2)
    assert [query["offset"] for query, _ in hub.requests] == ["0", "200"]


def test_a_hub_with_more_pages_than_the_console_counts_is_unknown(hub, monkeypatch):
    monkeypatch.setattr(jupyterhub, "MAX_PAGES", 3)
    hub.answer = lambda query: (200, {}, page([user(f"u{query['offset']}", True)], next_offset=1))
    with pytest.raises(Unavailable, match="more than 600 active users"):
        reader.read(hub.url, "t")
    assert len(hub.requests) == 3


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        (302, {"Location": "https://sso.example.org/login"}, r"redirected the console \(HTTP 302\)"),
        (403, {}, r"refused the console's token \(HTTP 403\)"),
        (401, {}, r"refused the console's token \(HTTP 401\)"),
        (404, {}, "no JupyterHub API"),
        (502, {}, "answered HTTP 502"),
    ],
)
def test_an_error_status_is_unavailable_and_says_what_happened(hub, status, headers, message):
    hub.answer = lambda query: (status, headers, {"message": "no"})
    with pytest.raises(Unavailable, match=message):
        reader.read(hub.url, "t")
    assert len(hub.requests) == 1  # the redirect is not followed: the token goes nowhere else


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>sign in</html>", "not JSON"),
        ([], "not a page of users"),
        ({"items": {}}, "not a page of users"),
        ({"items": []}, "no pagination"),
        ({"items": [], "_pagination": {"next": "more"}}, "no pagination"),
        (page([{"name": 7, "servers": {}}]), "without a name or servers"),
        (page([{"name": "ann", "servers": []}]), "without a name or servers"),
        (page(["ann"]), "without a name or servers"),
        (page([{"name": "ann", "servers": {"": {"ready": "yes"}}}]), "server without its state"),
        (page([{"name": "ann", "servers": {"": None}}]), "server without its state"),
    ],
)
def test_an_answer_not_shaped_like_jupyterhubs_is_unavailable(hub, body, message):
    hub.answer = lambda query: (200, {}, body)
    with pytest.raises(Unavailable, match=message):
        reader.read(hub.url, "t")


def test_an_answer_larger_than_the_limit_is_refused(hub, monkeypatch):
    monkeypatch.setattr(jupyterhub, "MAX_PAGE_BYTES", 1000)
    hub.answer = lambda query: (200, {}, page([user(f"user-{i}", True) for i in range(50)]))
    with pytest.raises(Unavailable, match="larger than"):
        reader.read(hub.url, "t")


def test_a_hub_slower_than_the_budget_is_no_answer_within_about_the_budget(hub):
    hub.delay = 3
    started = time.monotonic()
    with pytest.raises(NoAnswer, match=r"hub not reachable: no answer within 0.5 s"):
        HubUsageReader(timeout=0.5).read(hub.url, "t")
    assert time.monotonic() - started < 1.5


def test_a_closed_port_is_no_answer():
    with pytest.raises(NoAnswer, match="hub not reachable: the connection failed"):
        reader.read("http://127.0.0.1:9", "t")
