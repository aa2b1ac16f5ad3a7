"""A one-question DNS client over UDP, to tell when the node's CoreDNS answers (RFC 1035, A records only)."""

import socket
import struct


def query(name: str, ident: int = 0x4453) -> bytes:
    """A standard query for the A records of `name`, recursion desired."""
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(part)]) + part.encode("ascii") for part in name.rstrip(".").split("."))
    return header + labels + b"\x00" + struct.pack("!HH", 1, 1)


def a_records(response: bytes) -> list[str]:
    """The IPv4 addresses in a response's answer section ([] for an error or no answer)."""
    _ident, flags, questions, answers, _ns, _ar = struct.unpack("!HHHHHH", response[:12])
    if flags & 0x000F:  # RCODE: NXDOMAIN, SERVFAIL, ...
        return []
    offset = 12
    for _ in range(questions):
        offset = _skip_name(response, offset) + 4
    found = []
    for _ in range(answers):
        offset = _skip_name(response, offset)
        rtype, _rclass, _ttl, length = struct.unpack("!HHIH", response[offset : offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            found.append(socket.inet_ntoa(response[offset : offset + 4]))
        offset += length
    return found


def _skip_name(message: bytes, offset: int) -> int:
    while True:
        length = message[offset]
        if length & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        if length == 0:
            return offset + 1
        offset += 1 + length


def resolve(name: str, server: str, timeout: float = 1.0) -> list[str]:
    """Ask `server` (port 53) for the A records of `name`; [] if it does not answer in time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query(name), (server, 53))
            return a_records(sock.recv(4096))
        except OSError:
            return []
