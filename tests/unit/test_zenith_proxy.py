"""The local stack's Zenith proxy: strict Host routing to a real HTTP server on loopback, and its upstream choice."""

import http.server
import json
import socket
import threading

import pytest
import requests
from kubernetes import client

from devstack import zenith
from devstack.zenith_proxy import RefusedRequest, ZenithProxy, parse_head, requested_host, upstream_head

HOST = "jupyterhub-demo.zenith.localhost"


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers with the request line and headers it received, as JSON."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = json.dumps({"path": self.path, "headers": dict(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address
    server.shutdown()


@pytest.fixture(scope="module")
def proxy(upstream):
    def resolve(namespace, name):
        if namespace == "gone":
            raise LookupError("its Zenith Client or Service cannot be read (404 Not Found)")
        if namespace == "down":
            return ("127.0.0.1", free_port())
        return upstream

    running = ZenithProxy(resolve)
    running.start()
    running.routes = {HOST: ("demo", "jupyterhub"), "gone.zenith.localhost": ("gone", "x")}
    running.routes["down.zenith.localhost"] = ("down", "x")
    return running


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(proxy: ZenithProxy, host: str, path: str = "/hub/login", **headers) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{proxy.port}{path}", headers={"Host": host, **headers}, timeout=10)


def test_an_exposed_name_reaches_its_upstream_with_the_forwarding_headers_set_here(proxy):
    answer = get(proxy, f"{HOST}:{proxy.port}", "/hub/login?next=%2F", **{"X-Forwarded-For": "6.6.6.6"})
    assert answer.status_code == 200
    seen = answer.json()
    assert seen["path"] == "/hub/login?next=%2F"
    assert seen["headers"]["Host"] == f"{HOST}:{proxy.port}"
    assert seen["headers"]["X-Forwarded-Proto"] == "http"
    assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert seen["headers"]["Connection"] == "close"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example.com", 421),
        ("binderhub-demo.zenith.localhost", 421),
        (f"{HOST}:1", 421),
        ("gone.zenith.localhost", 502),
        ("down.zenith.localhost", 502),
    ],
)
def test_other_names_ports_and_unreachable_upstreams_are_answered_here(proxy, host, status):
    answer = get(proxy, host)
    assert answer.status_code == status
    assert answer.headers["Content-Type"].startswith("text/plain")


def test_a_request_with_two_hosts_or_an_absolute_target_is_refused(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        raw.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nHost: evil.example.com\r\n\r\n".encode())
        assert raw.recv(100).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        raw.sendall(f"GET http://evil.example.com/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        assert raw.recv(100).startswith(b"HTTP/1.1 400 ")


def test_heads_are_parsed_strictly():
    for bad in (b"GET /\r\n\r\n", b"GET / HTTP/2\r\n\r\n", b"GET / HTTP/1.1\r\nno colon\r\n\r\n"):
        with pytest.raises(RefusedRequest):
            parse_head(bad)
    request = parse_head(b"GET /x HTTP/1.1\r\nHost: A.zenith.localhost:80\r\n\r\n")
    assert requested_host(request, 80) == "a.zenith.localhost"


def test_a_websocket_upgrade_stays_an_upgrade_and_other_requests_close():
    upgrade = parse_head(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: ws\r\n\r\n")
    plain = parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nX-Forwarded-Host: evil\r\n\r\n")
    assert b"\r\nConnection: Upgrade\r\n" in upstream_head(upgrade, "h", "127.0.0.1")
    sent = upstream_head(plain, "h", "127.0.0.1")
    assert b"Connection: close" in sent and b"keep-alive" not in sent
    assert b"evil" not in sent and b"X-Forwarded-Host: h\r\n" in sent


def service(cluster_ip: str | None, *ports: tuple[str, int]) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name="proxy-public"),
        spec=client.V1ServiceSpec(
            cluster_ip=cluster_ip, ports=[client.V1ServicePort(name=n, port=p) for n, p in ports]
        ),
    )


def test_the_upstream_is_the_services_cluster_ip_and_the_clients_port():
    two = service("10.0.0.7", ("http", 80), ("https", 443))
    assert zenith.service_address(two, None) == ("10.0.0.7", 80)
    assert zenith.service_address(two, "https") == ("10.0.0.7", 443)
    assert zenith.service_address(two, 443) == ("10.0.0.7", 443)
    for bad, port in ((service("None", ("http", 80)), None), (service(None, ("http", 80)), None), (two, 8080)):
        with pytest.raises(LookupError):
            zenith.service_address(bad, port)


def test_only_the_names_the_watch_writes_are_routed():
    ours = zenith.Exposed("demo", "jupyterhub", "jupyterhub", "jupyterhub-demo.zenith.localhost", marked=False)
    other = zenith.Exposed("demo", "binderhub", "binderhub", "elsewhere.example.org", marked=False)
    assert zenith.proxy_routes([ours, other]) == {"jupyterhub-demo.zenith.localhost": ("demo", "jupyterhub")}
