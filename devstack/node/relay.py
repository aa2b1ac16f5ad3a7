"""Relays TCP from the pods' bridge address to services of the local stack that listen on loopback only.

Keycloak and the chart repository listen on 127.0.0.1, which inside a pod is the pod itself. The hub
pod calls Keycloak's token and userinfo endpoints (KEYCLOAK_URL_FROM_CLUSTERS), so with the node
`python -m devstack.node.relay ADDRESS PORT...` listens on the bridge's address (which only the pods
and this machine reach) and copies each connection to the same port on loopback. Keycloak answers with
the issuer it is configured with (--hostname), whichever address the request came to.
"""

import argparse
import asyncio
import sys

from devstack import config
from devstack.tcp_pipe import pipe

NAME = "host-relay"


def _handler(port: int):
    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(config.HOST, port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    return relay


async def serve(address: str, ports: list[int]) -> None:
    servers = [await asyncio.start_server(_handler(port), address, port) for port in ports]
    print(f"relaying {address}:{','.join(map(str, ports))} to {config.HOST}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.node.relay", description=__doc__.splitlines()[0])
    parser.add_argument("address", help="the address to listen on (the bridge's)")
    parser.add_argument("ports", nargs="+", type=int, help="ports to relay to the same port on loopback")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.address, args.ports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
