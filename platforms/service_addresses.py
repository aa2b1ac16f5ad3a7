"""Pure checks of the service addresses a cluster reports: only plain DNS host names become links.

Whoever can write a Reservation's status (or an Ingress) in a platform's namespace chooses what the
cluster reports, so a reported address is untrusted input: it reaches a redirect, Keycloak's
redirect URIs and Helm values only once it is a plain host name where the console expects one.
"""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from platforms.access_rules import SERVICES
from platforms.services.types import ServiceLinkInfo
from platforms.values import SERVICE_LABELS

# RFC 1123 labels: letters, digits and '-', not at either end, 1-63 characters (re.ASCII keeps
# \w-like classes out; the classes below are ASCII already, and \Z refuses a trailing newline).
HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
HOST_MAX_LENGTH = 253
SHOWN_LENGTH = 60


class RefusedAddress(ValueError):
    """The reported address is not a host name the console accepts; the message says why."""


def check_host(value: object, base_domain: str = "") -> str:
    """The host name, lower-cased, if it is a plain DNS name (under base_domain when one is given).

    Raises RefusedAddress for anything else: a scheme, path, port, user, IP address, whitespace,
    non-ASCII letters, an over-long name, or a name outside the base domain.
    """
    if not isinstance(value, str) or not value:
        raise RefusedAddress("it is not a host name")
    if len(value) > HOST_MAX_LENGTH:
        raise RefusedAddress(f"it is longer than {HOST_MAX_LENGTH} characters")
    host = value.lower()
    labels = host.split(".")
    if not all(HOST_LABEL.match(label) for label in labels):
        raise RefusedAddress("it is not a plain host name (only letters, digits, '-' and dots)")
    if labels[-1].isdigit():
        raise RefusedAddress("it is an IP address, not a host name")
    if base_domain and not host.endswith(f".{base_domain}"):
        raise RefusedAddress(f"it is not under the cluster's Zenith base domain {base_domain}")
    return host


def is_service_url(url: str) -> bool:
    """True for the only URLs the console records: http(s)://<plain host name>, nothing more.

    The one port allowed is the console's own ZENITH_LINK_PORT (check_host refuses a reported one).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or url != f"{parts.scheme}://{parts.netloc}":
        return False
    host, colon, port = parts.netloc.partition(":")
    if colon and (not settings.ZENITH_LINK_PORT or port != str(settings.ZENITH_LINK_PORT)):
        return False
    try:
        check_host(host)
    except RefusedAddress:
        return False
    return True


def shown(value: object) -> str:
    """A reported value as a page may show it: printable, and cut short (templates escape it)."""
    text = value if isinstance(value, str) else repr(value)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= SHOWN_LENGTH else text[:SHOWN_LENGTH] + "…"


@dataclass(frozen=True)
class CheckedLink:
    """A service as the console records it: a URL only when the reported address was accepted."""

    name: str
    url: str
    ready: bool
    problem: str = ""

    @property
    def label(self) -> str:
        return SERVICE_LABELS[self.name][0]


def zenith_url(host: str, scheme: str = "https", port: int = 0) -> str:
    """The link to a host Zenith exposes: https://<host> behind Zenith's TLS proxy, unless the console
    is set otherwise (ZENITH_LINK_SCHEME and ZENITH_LINK_PORT, e.g. the local stack's plain-http relay)."""
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def check_link(
    info: ServiceLinkInfo,
    zenith_base_domain: str = "",
    ingress_url: str = "",
    zenith_origin: tuple[str, int] = ("https", 0),
) -> CheckedLink:
    """The link for one reported service.

    With Zenith the link is zenith_url(<reported fqdn>, *zenith_origin), accepted under the cluster's
    base domain; with an Ingress the reported host must be exactly the one the console asked for (ingress_url).
    """
    if not info.ready:
        return CheckedLink(info.name, "", False)
    try:
        host = check_host(info.host, zenith_base_domain)
        if ingress_url and host != urlsplit(ingress_url).hostname:
            raise RefusedAddress(f"it is not the host the console asked for ({urlsplit(ingress_url).hostname})")
    except RefusedAddress as exc:
        label = SERVICE_LABELS[info.name][0]
        problem = f"The cluster reported “{shown(info.host)}” as the address of {label}; it is not used, as {exc}."
        return CheckedLink(info.name, "", False, problem)
    return CheckedLink(info.name, ingress_url or zenith_url(host, *zenith_origin), True)


def check_links(
    found: list[ServiceLinkInfo],
    zenith_base_domain: str = "",
    ingress_urls: dict[str, str] | None = None,
    zenith_origin: tuple[str, int] = ("https", 0),
) -> list[CheckedLink]:
    """The platform's services as reported, checked; other names and repeats of a service are left out."""
    checked: dict[str, CheckedLink] = {}
    for info in found:
        if info.name in SERVICES and info.name not in checked:
            ingress_url = (ingress_urls or {}).get(info.name, "")
            checked[info.name] = check_link(info, zenith_base_domain, ingress_url, zenith_origin)
    return [checked[name] for name in SERVICES if name in checked]
