"""Reads a platform's JupyterHub REST API: how many users are active and how many servers run.

The hub is a workload on a cluster the console does not control: its answer is untrusted input,
read within a time and size budget and checked field by field. REST API reference:
https://jupyterhub.readthedocs.io/en/stable/reference/rest-api.html (GET /users, with `state` and
pagination).
"""

import json
import time
from functools import cache

import requests
from django.conf import settings

from platforms.services.errors import NoAnswer, Unavailable
from platforms.services.interfaces import HubReader
from platforms.services.types import HubUsage

# The hub's own largest page (JupyterHub.api_page_max_limit); asking for more gets this many.
PAGE_SIZE = 200
# A hub with more active users than this is reported as unknown rather than read without end.
MAX_PAGES = 25
# Far above what a page of PAGE_SIZE users with their servers takes (about 1 KB a server).
MAX_PAGE_BYTES = 4 * 1024 * 1024
PAGINATION = "application/jupyterhub-pagination+json"


class HubUsageReader:
    """One hub's usage from its users list, filtered to the active ones (one request up to 200 users)."""

    def __init__(self, timeout: float):
        self.timeout = timeout

    def read(self, hub_url: str, token: str) -> HubUsage:
        """The usage of the hub at `hub_url` (its public address), asked with the service token `token`.

        Raises NoAnswer when the hub does not answer within the time budget, and Unavailable when it
        answers with an error, a redirect (a sign-in in front of it) or something that is not
        JupyterHub's users list.
        """
        deadline = time.monotonic() + self.timeout
        users: set[str] = set()
        servers = 0
        for page in range(MAX_PAGES):
            body = self._get_page(hub_url, token, page * PAGE_SIZE, deadline)
            items, has_next = parse_page(body)
            for name, running in items:
                if name not in users:
                    users.add(name)
                    servers += running
            if not has_next:
                return HubUsage(active_users=len(users), servers=servers)
        raise Unavailable(f"more than {MAX_PAGES * PAGE_SIZE} active users, more than the console counts")

    def _get_page(self, hub_url: str, token: str, offset: int, deadline: float) -> bytes:
        """One page of the active users, read within what is left of the budget and MAX_PAGE_BYTES."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoAnswer(f"hub not reachable: no answer within {self.timeout:g} s")
        try:
            # The next page's address is ours, never the `next.url` the hub offers; no redirect is
            # followed, so the token goes to this address only.
            with requests.get(
                f"{hub_url.rstrip('/')}/hub/api/users",
                params={"state": "active", "offset": offset, "limit": PAGE_SIZE},
                headers={"Authorization": f"token {token}", "Accept": PAGINATION},
                timeout=left,
                allow_redirects=False,
                stream=True,
            ) as response:
                check_status(response.status_code)
                return read_within(response, deadline)
        except requests.Timeout as exc:
            raise NoAnswer(f"hub not reachable: no answer within {self.timeout:g} s") from exc
        except requests.exceptions.SSLError as exc:
            raise NoAnswer("hub not reachable: its TLS certificate was not accepted") from exc
        except requests.RequestException as exc:
            raise NoAnswer("hub not reachable: the connection failed") from exc


def check_status(status: int) -> None:
    """Turn the hub's HTTP status into the message a person reads next to "unknown"."""
    if status == 200:
        return
    if 300 <= status < 400:
        raise Unavailable(f"the hub's address redirected the console (HTTP {status}), to a sign-in in front of it?")
    if status in (401, 403):
        raise Unavailable(f"the hub refused the console's token (HTTP {status}); the next upgrade gives it the token")
    if status == 404:
        raise Unavailable("no JupyterHub API at the hub's address (HTTP 404)")
    raise Unavailable(f"the hub answered HTTP {status}")


def read_within(response: requests.Response, deadline: float) -> bytes:
    """The body, refused past MAX_PAGE_BYTES or past the deadline (a slow drip is no answer either)."""
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_PAGE_BYTES:
            raise Unavailable(f"the hub's answer is larger than {MAX_PAGE_BYTES // (1024 * 1024)} MiB")
        if time.monotonic() > deadline:
            raise NoAnswer("hub not reachable: its answer came too slowly")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_page(body: bytes) -> tuple[list[tuple[str, int]], bool]:
    """(user name, running servers) for each user of a paginated users page, and whether more follow.

    Raises Unavailable for anything that is not JupyterHub's shape.
    """
    try:
        data = json.loads(body)
    except ValueError:
        raise Unavailable("the hub's answer is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise Unavailable("the hub's answer is not a page of users")
    pagination = data.get("_pagination")
    if not isinstance(pagination, dict) or not isinstance(pagination.get("next"), dict | None):
        raise Unavailable("the hub's answer has no pagination")
    return [user_servers(item) for item in data["items"]], pagination["next"] is not None


def user_servers(item: object) -> tuple[str, int]:
    """A user's name and how many of their servers are ready (running, not starting or stopping)."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("servers"), dict):
        raise Unavailable("the hub's answer has a user without a name or servers")
    servers = item["servers"].values()
    if not all(isinstance(server, dict) and isinstance(server.get("ready"), bool) for server in servers):
        raise Unavailable("the hub's answer has a server without its state")
    return item["name"], sum(1 for server in servers if server["ready"])


@cache
def get_hub_reader() -> HubReader:
    """The configured reader (tests replace this factory with a fake)."""
    return HubUsageReader(timeout=settings.USAGE_TIMEOUT_SECONDS)
