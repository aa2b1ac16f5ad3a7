"""Checks kubeconfigs and cuts them down to one context with inline credentials, before any use.

A kubeconfig is code: `exec` and `auth-provider` run programs, `tokenFile` and the certificate
fields read files on whatever machine uses it. The console and helm get only what `check` returns:
one cluster, one user and one context, with the fields listed below and nothing else.
Kubeconfig reference: https://kubernetes.io/docs/reference/config-api/kubeconfig.v1/
"""

import base64
import binascii
import contextlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import yaml
from django.conf import settings

from platforms.services.errors import BadInput
from platforms.services.types import KubeconfigContexts

MAX_BYTES = 256 * 1024
CLUSTER_FIELDS = {"server", "certificate-authority-data", "insecure-skip-tls-verify", "tls-server-name"}
USER_FIELDS = {"token", "client-certificate-data", "client-key-data"}
INLINE_INSTEAD = (
    "The console uses only credentials written inline: a token (token), or a client certificate "
    "(client-certificate-data and client-key-data)."
)
# Fields we refuse with a word on what to use instead; any other unknown field is refused too.
REFUSED_USER_FIELDS = {
    "exec": f"it would run a program on the console's server. {INLINE_INSTEAD}",
    "auth-provider": f"it would run a plugin on the console's server. {INLINE_INSTEAD}",
    "tokenFile": "the console does not read files: paste the token itself as token.",
    "client-certificate": "the console does not read files: paste the certificate as client-certificate-data.",
    "client-key": "the console does not read files: paste the key as client-key-data.",
    "username": f"basic authentication is not supported. {INLINE_INSTEAD}",
    "password": f"basic authentication is not supported. {INLINE_INSTEAD}",
}
REFUSED_CLUSTER_FIELDS = {
    "certificate-authority": "the console does not read files: paste the CA as certificate-authority-data.",
    "proxy-url": "the console connects to the API server directly; remove proxy-url.",
}
# A bearer token goes into an HTTP header: visible ASCII only (a newline would break the request).
TOKEN = re.compile(r"[\x21-\x7e]{1,8192}\Z")
HOST_NAME = re.compile(r"(?=.{1,253}\Z)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\Z")

# libyaml's safe loader and dumper when PyYAML has them (its wheels do): the same documents for a
# fraction of the CPU, and a kubeconfig is parsed and written again at every call to a cluster.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class CheckedKubeconfig:
    """A kubeconfig reduced to its one context, and what the console shows about it."""

    text: str
    context: str
    server: str
    skips_tls_verify: bool


def check(text: str, context: str = "") -> CheckedKubeconfig:
    """The kubeconfig cut down to `context` (or its current context), with every field checked.

    Raises BadInput naming the field to change and what to use instead.
    """
    document = parse(text)
    name = context or document.get("current-context") or ""
    entry = _named(document, "contexts", name, "context") if name else None
    if entry is None:
        raise BadInput("The kubeconfig has no current context: choose one of its contexts.")
    if not isinstance(entry.get("cluster"), str) or not isinstance(entry.get("user"), str):
        raise BadInput(f"Context {name!r} must name a cluster and a user.")
    cluster = _fields(_named(document, "clusters", entry["cluster"], "cluster"), "cluster", entry["cluster"])
    user = _fields(_named(document, "users", entry["user"], "user"), "user", entry["user"])
    _check_cluster(cluster, entry["cluster"])
    _check_user(user, entry["user"])
    minimal = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": entry["cluster"], "cluster": cluster}],
        "users": [{"name": entry["user"], "user": user}],
        "contexts": [{"name": name, "context": {"cluster": entry["cluster"], "user": entry["user"]}}],
        "current-context": name,
    }
    return CheckedKubeconfig(
        text=yaml.dump(minimal, Dumper=DUMPER, sort_keys=False),
        context=name,
        server=cluster["server"],
        skips_tls_verify=cluster.get("insecure-skip-tls-verify") is True,
    )


def contexts(text: str) -> KubeconfigContexts:
    """The context names in a kubeconfig and its current context; raises BadInput if it has none."""
    document = parse(text)
    names = [
        entry["name"]
        for entry in document.get("contexts") or []
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    ]
    if not names:
        raise BadInput("The kubeconfig has no contexts.")
    current = document.get("current-context")
    return KubeconfigContexts(names=names, current=current if current in names else "")


def parse(text: str) -> dict:
    """The kubeconfig as a YAML mapping; raises BadInput for anything else or anything too large."""
    if len(text.encode()) > MAX_BYTES:
        raise BadInput(f"The kubeconfig is larger than {MAX_BYTES // 1024} KB.")
    try:
        document = yaml.load(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        raise BadInput(f"The kubeconfig is not valid YAML: {_short(exc)}") from None
    if not isinstance(document, dict):
        raise BadInput("The kubeconfig is not a YAML mapping.")
    return document


def _named(document: dict, section: str, name: str, kind: str) -> dict:
    for item in document.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(kind), dict):
            return item[kind]
    raise BadInput(f"The kubeconfig has no {kind} {name!r}.")


def _fields(entry: dict, kind: str, name: str) -> dict:
    """The entry's fields, refusing those that run programs, read files, or are unknown."""
    allowed, refused = (
        (CLUSTER_FIELDS, REFUSED_CLUSTER_FIELDS) if kind == "cluster" else (USER_FIELDS, REFUSED_USER_FIELDS)
    )
    for field in entry:
        if field in refused:
            reason = refused[field]
            raise BadInput(f"The kubeconfig's {kind} {name!r} uses {field}, which the console refuses: {reason}")
        if field not in allowed:
            raise BadInput(
                f"The kubeconfig's {kind} {name!r} has the field {str(field)[:40]!r}, which the console does not "
                f"accept. Allowed: {', '.join(sorted(allowed))}."
            )
    return dict(entry)


def _check_cluster(cluster: dict, name: str) -> None:
    server = cluster.get("server")
    if not isinstance(server, str):
        raise BadInput(f"The kubeconfig's cluster {name!r} has no server address.")
    parts = urlsplit(server)
    if parts.scheme != "https":
        raise BadInput(f"The API server address of cluster {name!r} must start with https://.")
    if parts.username or parts.password or parts.query or parts.fragment or not parts.hostname:
        raise BadInput(f"The API server address of cluster {name!r} must be https://host[:port][/path] only.")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise BadInput(f"The API server address of cluster {name!r} has an invalid port.") from None
    if not host_allowed(parts.hostname):
        raise BadInput(
            f"The API server host {parts.hostname} is not one this console may register "
            f"(CLUSTER_API_HOSTS allows: {', '.join(settings.CLUSTER_API_HOSTS)})."
        )
    if "insecure-skip-tls-verify" in cluster and not isinstance(cluster["insecure-skip-tls-verify"], bool):
        raise BadInput(f"insecure-skip-tls-verify of cluster {name!r} must be true or false.")
    tls_name = cluster.get("tls-server-name")
    if tls_name is not None and not (isinstance(tls_name, str) and HOST_NAME.match(tls_name)):
        raise BadInput(f"tls-server-name of cluster {name!r} must be a host name.")
    if "certificate-authority-data" in cluster:
        _base64(cluster["certificate-authority-data"], "certificate-authority-data", name)


def _check_user(user: dict, name: str) -> None:
    if "token" in user:
        if not isinstance(user["token"], str) or not TOKEN.match(user["token"]):
            raise BadInput(f"The token of user {name!r} must be one line of visible characters, without spaces.")
        return
    if "client-certificate-data" in user and "client-key-data" in user:
        for field in ("client-certificate-data", "client-key-data"):
            _base64(user[field], field, name)
        return
    raise BadInput(f"The kubeconfig's user {name!r} has no inline credentials. {INLINE_INSTEAD}")


def _base64(value: object, field: str, name: str) -> None:
    try:
        if not isinstance(value, str) or not base64.b64decode(value, validate=True):
            raise ValueError
    except (binascii.Error, ValueError):
        raise BadInput(f"{field} of {name!r} must be base64 (as `base64 -w0` writes it).") from None


def host_allowed(host: str) -> bool:
    """True when CLUSTER_API_HOSTS is empty, or names the host, or a parent domain as `.example.org`."""
    patterns = settings.CLUSTER_API_HOSTS
    if not patterns:
        return True
    host = host.lower()
    with contextlib.suppress(ValueError):  # an IP address in its one canonical spelling
        host = str(ipaddress.ip_address(host))
    return any(host == pattern or (pattern.startswith(".") and host.endswith(pattern)) for pattern in patterns)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"
