"""Zenith's proxy for the local stack: http://<service>-<platform>.zenith.localhost:<port> reaches its Service.

Zenith's own proxy terminates TLS at https://<fqdn> and tunnels to the Service the Client names. Here
`python -m devstack zenith --watch` runs this on loopback instead, in plain http (browsers resolve every
*.localhost name to loopback, RFC 6761, so no certificate and no DNS are needed), and routes by the Host
header to the Service's cluster address, which this machine reaches through kube-proxy's rules when the
node runs. Only the names the watch exposed are routed; any other Host is answered 421, so a page
elsewhere whose name is re-bound to 127.0.0.1 reaches nothing. Each connection carries one request
(the upstream is told `Connection: close`), so the Host of every request is checked; a WebSocket
upgrade (notebook kernels) stays open as a tunnel once its request was checked.
"""

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from devstack.tcp_pipe import pipe

HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT_SECONDS = 30
CONNECT_TIMEOUT_SECONDS = 10
# How long an upstream address is reused before the cluster is asked again.
UPSTREAM_CACHE_SECONDS = 10
TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# Set here, never taken from the client: the upstream trusts them as a TLS-terminating proxy's.
DROPPED = {b"connection", b"keep-alive", b"proxy-connection", b"forwarded", b"x-real-ip"}
DROPPED_PREFIX = b"x-forwarded-"

# (namespace, Reservation name) -> the Service's cluster address; raises LookupError saying why not.
Resolver = Callable[[str, str], tuple[str, int]]


class RefusedRequest(Exception):
    """The request is answered here with this status and message, never sent upstream."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Request:
    """A request's head: its request line, and its header fields in order."""

    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]

    def values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name]

    @property
    def is_upgrade(self) -> bool:
        connection = b",".join(self.values(b"connection")).lower()
        return bool(self.values(b"upgrade")) and b"upgrade" in {token.strip() for token in connection.split(b",")}


def parse_head(head: bytes) -> Request:
    """The request head (up to and including the blank line), checked; raises RefusedRequest (400)."""
    lines = head.split(b"\r\n")
    try:
        method, target, version = lines[0].split(b" ")
    except ValueError:
        raise RefusedRequest(400, "Bad Request", "malformed request line") from None
    if not TOKEN.match(method) or version not in (b"HTTP/1.1", b"HTTP/1.0") or not target.startswith(b"/"):
        # An absolute target (http://elsewhere/) would make this an open proxy.
        raise RefusedRequest(400, "Bad Request", "only origin-form requests over HTTP/1.x")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.match(name):
            raise RefusedRequest(400, "Bad Request", "malformed header field")
        headers.append((name, value.strip()))
    return Request(method, target, version, headers)


def requested_host(request: Request, port: int) -> str:
    """The host name the request is for: exactly one Host field, naming this port or none."""
    hosts = request.values(b"host")
    if len(hosts) != 1:
        raise RefusedRequest(400, "Bad Request", "exactly one Host header is required")
    host, colon, given_port = hosts[0].decode("ascii", "replace").lower().partition(":")
    if colon and given_port != str(port):
        raise RefusedRequest(421, "Misdirected Request", "not a port this relay serves")
    return host


def upstream_head(request: Request, host: str, client_ip: str) -> bytes:
    """The head sent upstream: the client's fields without hop-by-hop and forwarding ones, and ours."""
    kept = [(k, v) for k, v in request.headers if k.lower() not in DROPPED and not k.lower().startswith(DROPPED_PREFIX)]
    if request.is_upgrade:
        kept.append((b"Connection", b"Upgrade"))
    else:
        kept.append((b"Connection", b"close"))
    kept += [
        (b"X-Forwarded-Proto", b"http"),
        (b"X-Forwarded-Host", host.encode()),
        (b"X-Forwarded-For", client_ip.encode()),
    ]
    lines = [b" ".join((request.method, request.target, request.version))]
    lines += [name + b": " + value for name, value in kept]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def refusal(status: int, reason: str, message: str) -> bytes:
    body = f"{status} {reason}: {message}\n".encode()
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
    return head.encode() + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body


class ZenithProxy:
    """Routes requests for the exposed host names to their platforms' Services.

    routes: host name -> (namespace, Reservation name), replaced as a whole by the watch;
    resolve(namespace, name) -> (cluster IP, port), called in a thread, raises LookupError with why.
    """

    def __init__(self, resolve: Resolver, host: str = "127.0.0.1", port: int = 0):
        self.resolve = resolve
        self.host, self.port = host, port
        self.routes: dict[str, tuple[str, str]] = {}
        self._cache: dict[tuple[str, str], tuple[float, tuple[str, int]]] = {}

    async def _upstream(self, route: tuple[str, str]) -> tuple[str, int]:
        cached = self._cache.get(route)
        if cached and time.monotonic() - cached[0] < UPSTREAM_CACHE_SECONDS:
            return cached[1]
        try:
            address = await asyncio.get_running_loop().run_in_executor(None, self.resolve, *route)
        except LookupError as exc:
            raise RefusedRequest(502, "Bad Gateway", f"{route[0]}/{route[1]}: {exc}") from None
        self._cache[route] = (time.monotonic(), address)
        return address

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
            request = parse_head(head)
            host = requested_host(request, self.port)
            route = self.routes.get(host)
            if route is None:
                raise RefusedRequest(421, "Misdirected Request", f"{host!r} is not a name this relay exposes")
            address = await self._upstream(route)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                    up_reader, up_writer = await asyncio.open_connection(*address)
            except (OSError, TimeoutError):
                self._cache.pop(route, None)
                raise RefusedRequest(502, "Bad Gateway", f"nothing answers at {address[0]}:{address[1]}") from None
        except RefusedRequest as exc:
            await _answer(writer, refusal(exc.status, exc.reason, str(exc)))
            return
        except asyncio.LimitOverrunError:
            await _answer(writer, refusal(431, "Request Header Fields Too Large", "the request head is too large"))
            return
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, UnicodeError):
            writer.close()
            return
        client_ip = (writer.get_extra_info("peername") or ("",))[0]
        up_writer.write(upstream_head(request, host, client_ip))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def serve(self, started: threading.Event | None = None) -> None:
        servers = [await asyncio.start_server(self.handle, self.host, self.port, limit=HEAD_LIMIT)]
        self.port = servers[0].sockets[0].getsockname()[1]
        if self.host == "127.0.0.1":
            # Browsers may try ::1 first for a *.localhost name; serve it too where the machine has it.
            with contextlib.suppress(OSError):
                servers.append(await asyncio.start_server(self.handle, "::1", self.port, limit=HEAD_LIMIT))
        if started:
            started.set()
        await asyncio.gather(*(server.serve_forever() for server in servers))

    def start(self) -> None:
        """Serve in a daemon thread; returns once listening (raises OSError if the port is taken)."""
        started = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self.serve(started))
            except OSError as exc:
                failed.append(exc)
                started.set()

        threading.Thread(target=run, name="zenith-proxy", daemon=True).start()
        started.wait()
        if failed:
            raise failed[0]


async def _answer(writer: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        writer.write(data)
        await writer.drain()
    writer.close()
