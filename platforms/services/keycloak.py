"""Keycloak's admin REST API through python-keycloak: groups, their members, users and platform clients.

The console signs in to the admin API as the realm's confidential service-account client
(KEYCLOAK_ADMIN_CLIENT_ID), which holds only the realm-management roles it needs.
API reference: https://www.keycloak.org/docs-api/latest/rest-api/index.html
"""

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache

import requests
from django.conf import settings
from keycloak import KeycloakAdmin, KeycloakOpenID, KeycloakOpenIDConnection, urls_patterns
from keycloak.exceptions import (
    KeycloakAuthenticationError,
    KeycloakConnectionError,
    KeycloakError,
    KeycloakGetError,
    raise_error_from_response,
)
from urllib3.exceptions import NewConnectionError

from platforms.services.errors import (
    BadInput,
    Conflict,
    NoAnswer,
    NotFound,
    OutcomeUnknown,
    ServiceError,
    Unavailable,
)
from platforms.services.interfaces import Directory
from platforms.services.types import DirectoryGroup, DirectoryUser, OidcClient, UserPage

logger = logging.getLogger(__name__)

# Keycloak ids are UUIDs, or "f:<provider>:<id>" for federated users; they go into URL paths
# unquoted (python-keycloak formats them in), so anything else is refused before a call.
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,254}\Z")
GROUP_PATH = re.compile(r"^(/[^/\x00-\x1f?#%]{1,255}){1,16}\Z")
# A user's groups are read in one call of at most this many; nobody is in more groups than this.
USER_GROUPS_LIMIT = 1000
# Listings of groups and clients are read this many at a time: one call up to this many entries.
LISTING_PAGE = 1000


class _Connection(KeycloakOpenIDConnection):
    """python-keycloak's connection, with its token requests not retried either.

    A retried request doubles the time a page waits for a Keycloak that does not answer;
    KEYCLOAK_TIMEOUT_SECONDS should be the whole wait.
    """

    @property
    def keycloak_openid(self) -> KeycloakOpenID:
        if self._keycloak_openid is None:
            self._keycloak_openid = KeycloakOpenID(
                server_url=self.server_url,
                realm_name=self.realm_name,
                client_id=self.client_id,
                client_secret_key=self.client_secret_key,
                verify=self.verify,
                timeout=self.timeout,
                max_retries=0,
            )
        return self._keycloak_openid


class GroupDirectory:
    """Verb methods on the realm's groups, users and clients; every call has the configured timeout."""

    def __init__(self, server_url: str, realm: str, client_id: str, client_secret: str, timeout: int):
        self.server_url = server_url
        self.realm = realm
        self.timeout = timeout
        self._admin = KeycloakAdmin(
            connection=_Connection(
                server_url=server_url,
                realm_name=realm,
                client_id=client_id,
                client_secret_key=client_secret,
                grant_type="client_credentials",
                timeout=timeout,
                max_retries=0,
            )
        )

    # --- Groups ----------------------------------------------------------------------------------

    def find_group(self, path: str) -> DirectoryGroup | None:
        """The group at this full path, or None when there is none. Raises Unavailable."""
        _check_path(path)
        try:
            with self._asking(f"read group {path}"):
                found = self._admin.get_group_by_path(path)
        except NotFound:
            return None
        return DirectoryGroup(id=found["id"], path=found.get("path", path))

    def ensure_groups(self, paths: Sequence[str], likely_new: bool = False) -> list[DirectoryGroup]:
        """The groups at these paths, in order, each created (with its missing parents) if needed.

        A group created here has no subgroups yet, so its children are created without looking for
        them first, and a group found or created here is not looked up again: a new platform's three
        groups cost five requests, where one path at a time cost nine. When the caller expects the
        groups to be new (a platform's first install), each is created without a look first, and only
        looked up when Keycloak answers that it exists: four requests. Raises Unavailable.
        """
        known: dict[str, DirectoryGroup] = {}
        created: set[str] = set()
        unlooked = set(paths) if likely_new else set()
        return [self._ensure_group(path, known, created, unlooked) for path in paths]

    def _ensure_group(
        self, path: str, known: dict[str, DirectoryGroup], created: set[str], unlooked: set[str]
    ) -> DirectoryGroup:
        if path in known:
            return known[path]
        _check_path(path)
        parent_path, _, name = path.rpartition("/")
        found = None if parent_path in created or path in unlooked else self.find_group(path)
        if found is None:
            parent = self._ensure_group(parent_path, known, created, unlooked) if parent_path else None
            found, is_new = self._create_group(path, name, parent)
            if is_new:
                created.add(path)
        known[path] = found
        return found

    def _create_group(self, path: str, name: str, parent: DirectoryGroup | None) -> tuple[DirectoryGroup, bool]:
        """Create the group; (it, True), or (the one found, False) when someone created it meanwhile."""
        try:
            with self._asking(f"create group {path}", write=True):
                group_id = self._admin.create_group({"name": name}, parent=parent.id if parent else None)
        except Conflict:
            # Created by someone else between our look and our create (a retried task, a person).
            found = self.find_group(path)
            if found:
                return found, False
            raise
        logger.info("keycloak group %s created", path)
        return DirectoryGroup(id=group_id or self.find_group(path).id, path=path), True

    def remove_group(self, path: str) -> bool:
        """Delete the group and its subgroups; False when it was already gone. Raises Unavailable."""
        found = self.find_group(path)
        if found is None:
            return False
        try:
            with self._asking(f"delete group {path}", write=True):
                self._admin.delete_group(found.id)
        except NotFound:
            return False
        logger.info("keycloak group %s deleted", path)
        return True

    def members(self, path: str, first: int = 0, size: int = 50) -> UserPage:
        """One page of the group's direct members (two calls, whatever the member count).

        Raises NotFound when the group does not exist, Unavailable when Keycloak cannot be asked.
        """
        group = self.find_group(path)
        if group is None:
            raise NotFound(missing_group_message(path))
        query = {"first": max(first, 0), "max": size + 1, "briefRepresentation": "true"}
        with self._asking(f"list the members of {path}"):
            found = self._admin.get_group_members(group.id, query)
        return _page(found, first, size)

    # --- Users -----------------------------------------------------------------------------------

    def search_users(self, text: str, first: int = 0, size: int = 20) -> UserPage:
        """One page of users whose username, email, first or last name contains the text (one call).

        Keycloak's `search` splits the text on whitespace, wants every word to match one of those
        fields, and matches each as a prefix; so each word without wildcards or quotes is sent as
        `*word*`, to match anywhere. An empty text lists every user. Raises Unavailable.
        """
        text = text.strip()
        query = {"first": max(first, 0), "max": size + 1, "briefRepresentation": "true"}
        if text:
            query["search"] = text if ("*" in text or '"' in text) else " ".join(f"*{word}*" for word in text.split())
        with self._asking("search users"):
            found = self._admin.get_users(query)
        return _page(found, first, size)

    def get_user(self, user_id: str) -> DirectoryUser:
        """The user with this id. Raises NotFound when there is none, Unavailable."""
        _check_user_id(user_id)
        try:
            with self._asking("read the user"):
                found = self._admin.get_user(user_id)
        except NotFound:
            raise NotFound("That user no longer exists in Keycloak (deleted meanwhile?).") from None
        return _user(found)

    def find_user(self, username: str) -> DirectoryUser | None:
        """The user with exactly this username, or None (one call). Raises Unavailable."""
        query = {"username": username, "exact": "true", "briefRepresentation": "true", "first": 0, "max": 5}
        with self._asking(f"look up user {username}"):
            found = self._admin.get_users(query)
        for entry in found:
            if entry.get("username", "").lower() == username.lower():
                return _user(entry)
        return None

    def user_group_paths(self, user_id: str) -> frozenset[str]:
        """Full paths of the groups the user is a direct member of (one call).

        Raises NotFound when the user does not exist, Unavailable.
        """
        _check_user_id(user_id)
        query = {"first": 0, "max": USER_GROUPS_LIMIT}
        with self._asking("read the user's groups"):
            found = self._admin.get_user_groups(user_id, query, brief_representation=True)
        return frozenset(group["path"] for group in found if group.get("path"))

    def add_member(self, path: str, user_id: str) -> DirectoryUser:
        """Make the user a member of the group (a no-op if they are already); return the user.

        Raises NotFound naming what is missing (the group or the user), OutcomeUnknown when the
        change was sent but not answered, Unavailable.
        """
        group, user = self._group_and_user(path, user_id)
        with self._asking(f"add {user.username} to {path}", write=True):
            self._admin.group_user_add(user.id, group.id)
        return user

    def remove_member(self, path: str, user_id: str) -> DirectoryUser:
        """End the user's membership of the group (a no-op if they were not a member); return the user.

        Raises NotFound naming what is missing (the group or the user), OutcomeUnknown when the
        change was sent but not answered, Unavailable.
        """
        group, user = self._group_and_user(path, user_id)
        with self._asking(f"remove {user.username} from {path}", write=True):
            self._admin.group_user_remove(user.id, group.id)
        return user

    def _group_and_user(self, path: str, user_id: str) -> tuple[DirectoryGroup, DirectoryUser]:
        """Both ends of a membership change; NotFound names whichever is missing."""
        group = self.find_group(path)
        if group is None:
            raise NotFound(missing_group_message(path))
        return group, self.get_user(user_id)

    # --- Clients ---------------------------------------------------------------------------------

    def ensure_client(
        self, client_id: str, name: str, secret: str, redirect_uris: list[str], likely_new: bool = False
    ) -> OidcClient:
        """A confidential client with exactly this secret and these redirect URIs (created or updated).

        New clients get the realm's default client scopes (the `groups` scope among them). When the
        caller expects the client to be new, it is created without a look first (one request, not two).
        Raises BadInput when Keycloak refuses the representation, Unavailable.
        """
        wanted = {
            "clientId": client_id,
            "name": name,
            "enabled": True,
            "protocol": "openid-connect",
            "publicClient": False,
            "clientAuthenticatorType": "client-secret",
            "secret": secret,
            "standardFlowEnabled": True,
            "implicitFlowEnabled": False,
            "directAccessGrantsEnabled": False,
            "serviceAccountsEnabled": False,
            "redirectUris": list(redirect_uris),
        }
        existing = None if likely_new else self._client(client_id)
        if existing is None:
            try:
                with self._asking(f"create client {client_id}", write=True):
                    created = self._admin.create_client(wanted)
            except Conflict:
                existing = self._client(client_id)
                if existing is None:
                    raise
            else:
                logger.info("keycloak client %s created", client_id)
                return OidcClient(id=created, client_id=client_id, redirect_uris=tuple(redirect_uris))
        # Most upgrades and repairs change nothing here: a write only when a field differs.
        if any(_comparable(existing.get(field)) != _comparable(value) for field, value in wanted.items()):
            # Keycloak's PUT changes only the fields sent, so settings made by hand elsewhere stay.
            with self._asking(f"update client {client_id}", write=True):
                self._admin.update_client(existing["id"], wanted)
        return OidcClient(id=existing["id"], client_id=client_id, redirect_uris=tuple(redirect_uris))

    def _client(self, client_id: str) -> dict | None:
        """The client's representation (with its secret: the admin API shows it), or None. One request."""
        url = urls_patterns.URL_ADMIN_CLIENTS.format(**{"realm-name": self.realm})
        with self._asking(f"look up client {client_id}"):
            found = [entry for entry in self._get_list(url, {"clientId": client_id}) if entry["clientId"] == client_id]
        return found[0] if found else None

    def remove_client(self, client_id: str) -> bool:
        """Delete the client; False when it was already gone. Raises Unavailable."""
        with self._asking(f"look up client {client_id}"):
            existing = self._admin.get_client_id(client_id)
        if existing is None:
            return False
        try:
            with self._asking(f"delete client {client_id}", write=True):
                self._admin.delete_client(existing)
        except NotFound:
            return False
        logger.info("keycloak client %s deleted", client_id)
        return True

    # --- Listings, for the scheduled check of what Keycloak still has ----------------------------

    def paths_below(self, path: str, leaf_names: tuple[str, ...]) -> frozenset[str] | None:
        """Full paths of the group's children and of the groups named `leaf_names` below them.

        None when the group itself does not exist. The calls do not grow with the number of
        children: one to find the group, one listing of its children (per LISTING_PAGE), and one
        search per leaf name. Keycloak's group search with `populateHierarchy` returns every match
        inside the tree of its ancestors:
        https://www.keycloak.org/docs-api/latest/rest-api/index.html#_groups
        Raises Unavailable, also when a search finds LISTING_PAGE groups or more.
        """
        parent = self.find_group(path)
        if parent is None:
            return None
        realm = {"realm-name": self.realm}
        children = self._listing(
            f"list the groups in {path}",
            urls_patterns.URL_ADMIN_GROUP_CHILD.format(**realm, id=parent.id),
            {"briefRepresentation": "true"},
        )
        paths = {f"{path}/{child['name']}" for child in children}
        for name in leaf_names:
            query = {"search": name, "exact": "true", "briefRepresentation": "true", "populateHierarchy": "true"}
            with self._asking(f"find the groups named {name}"):
                roots = self._get_list(urls_patterns.URL_ADMIN_GROUPS.format(**realm), query | {"max": LISTING_PAGE})
            found = list(_tree_paths(roots))
            if sum(1 for each in found if each.endswith(f"/{name}")) >= LISTING_PAGE:
                # The search is paged over matches that all have the same name, so its pages come in
                # no stable order (a second page can repeat the first): refuse rather than guess.
                raise Unavailable(f"Keycloak has {LISTING_PAGE} groups or more named {name}, too many to check.")
            paths.update(each for each in found if each.startswith(f"{path}/"))
        return frozenset(paths)

    def client_ids(self, prefix: str) -> frozenset[str]:
        """The clientIds that start with `prefix` (one call per LISTING_PAGE clients). Raises Unavailable."""
        clients = self._listing(
            f"list the clients named {prefix}…",
            urls_patterns.URL_ADMIN_CLIENTS.format(**{"realm-name": self.realm}),
            {"clientId": prefix, "search": "true"},
        )
        return frozenset(client["clientId"] for client in clients if client.get("clientId", "").startswith(prefix))

    def _listing(self, what: str, url: str, query: dict) -> list[dict]:
        """Every entry of a listing in a stable order (by unique name), asked for LISTING_PAGE at a time."""
        entries: list[dict] = []
        while True:
            with self._asking(what):
                page = self._get_list(url, query | {"first": len(entries), "max": LISTING_PAGE})
            entries += page
            if len(page) < LISTING_PAGE:
                return entries

    def _get_list(self, url: str, query: dict) -> list[dict]:
        """One GET of a listing, by URL: python-keycloak's own group listings follow each group with
        one more call for its children."""
        found = raise_error_from_response(self._admin.connection.raw_get(url, **query), KeycloakGetError)
        if not isinstance(found, list):
            raise TypeError(f"a listing answered with {type(found).__name__}")
        return found

    # --- Errors ----------------------------------------------------------------------------------

    @contextmanager
    def _asking(self, what: str, write: bool = False) -> Iterator[None]:
        """Translate python-keycloak's exceptions (and its unexpected answers) into our error tree.

        `write` marks a call that changes Keycloak. When its request may have reached Keycloak and
        no answer came, the change may have been made all the same: that is OutcomeUnknown.
        """
        try:
            yield
        except KeycloakConnectionError as exc:
            cause = exc.__cause__ or exc
            if write and _may_have_arrived(cause):
                raise OutcomeUnknown(
                    f"Keycloak did not answer in time to {what} (timeout {self.timeout}s, {type(cause).__name__}), "
                    "but the request had been sent: the change may or may not have been made."
                ) from None
            raise NoAnswer(
                f"Keycloak did not answer in time to {what} (timeout {self.timeout}s, {type(cause).__name__}); "
                f"nothing was changed there. Try again when Keycloak at {self.server_url} is back."
            ) from None
        except KeycloakAuthenticationError:
            raise Unavailable(
                f"Keycloak refused the console's admin credentials when asked to {what}: check "
                "KEYCLOAK_ADMIN_CLIENT_ID and KEYCLOAK_ADMIN_CLIENT_SECRET."
            ) from None
        except KeycloakError as exc:
            raise _translate(exc, what) from None
        except (TypeError, KeyError, ValueError) as exc:
            logger.warning("keycloak answered unexpectedly to %s: %r", what, exc)
            raise Unavailable(f"Keycloak answered unexpectedly when asked to {what}.") from None


def _may_have_arrived(cause: BaseException) -> bool:
    """Whether a request that got no answer may have reached Keycloak's admin API.

    Only a connection that was never made proves it did not: refused (requests' ConnectionError
    over urllib3's NewConnectionError) or timed out while connecting (ConnectTimeout). A
    ReadTimeout, or a connection dropped after the request was sent, leaves it unknown. A token
    request that failed (python-keycloak renews the token before the call) is not the call itself.
    """
    if isinstance(cause, requests.ConnectTimeout):
        return False
    reason = getattr(cause.args[0], "reason", None) if cause.args else None
    if isinstance(cause, requests.ConnectionError) and isinstance(reason, NewConnectionError):
        return False
    request = getattr(cause, "request", None)
    return request is None or "/admin/realms/" in (request.url or "")


def _tree_paths(groups: list[dict], parent: str = "") -> Iterator[str]:
    """The full paths of these groups and of every subgroup listed inside them."""
    for group in groups:
        path = f"{parent}/{group['name']}"
        yield path
        yield from _tree_paths(group.get("subGroups") or [], path)


def _translate(exc: KeycloakError, what: str) -> ServiceError:
    code = exc.response_code or 0
    detail = _body_text(exc)
    if code == 404:
        return NotFound(f"Keycloak found nothing to {what}: {detail}")
    if code == 409:
        return Conflict(f"Keycloak refused to {what}, it conflicts with what exists: {detail}")
    if code == 400:
        return BadInput(f"Keycloak refused to {what}: {detail}")
    if code == 403:
        return Unavailable(
            f"Keycloak does not allow the console to {what} (HTTP 403): give its service account the "
            "realm-management roles listed in the README."
        )
    logger.warning("keycloak failed to %s: HTTP %s %s", what, code, detail)
    return Unavailable(f"Keycloak failed to {what} (HTTP {code}): {detail}")


def _body_text(exc: KeycloakError) -> str:
    body = exc.response_body
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or exc.error_message)
    return text if len(text) <= 200 else text[:200] + "…"


def missing_group_message(path: str) -> str:
    return f"The group {path} does not exist in Keycloak (removed by hand?). Use “Repair access” to re-create it."


def _check_user_id(user_id: str) -> None:
    if not USER_ID.match(user_id or ""):
        raise BadInput("That is not a Keycloak user id.")


def _comparable(value: object) -> object:
    """A field as Keycloak keeps it: redirect URIs are a set, returned in no particular order."""
    return sorted(value) if isinstance(value, list) else value


def _check_path(path: str) -> None:
    if not GROUP_PATH.match(path or "") or {".", ".."} & set(path.split("/")):
        raise BadInput(f"{path!r} is not a group path the console manages.")


def _user(entry: dict) -> DirectoryUser:
    return DirectoryUser(
        id=entry["id"],
        username=entry.get("username", ""),
        email=entry.get("email", "") or "",
        first_name=entry.get("firstName", "") or "",
        last_name=entry.get("lastName", "") or "",
        enabled=bool(entry.get("enabled", True)),
    )


def _page(found: list, first: int, size: int) -> UserPage:
    """A page from a list asked for with max=size+1: the extra entry only says that more follow."""
    users = tuple(_user(entry) for entry in found[:size])
    return UserPage(users=users, first=max(first, 0), size=size, has_more=len(found) > size)


@cache
def get_directory() -> Directory:
    """The configured Keycloak directory (tests clear this cache to swap settings)."""
    return GroupDirectory(
        server_url=settings.KEYCLOAK_BACKCHANNEL_URL,
        realm=settings.KEYCLOAK_REALM,
        client_id=settings.KEYCLOAK_ADMIN_CLIENT_ID,
        client_secret=settings.KEYCLOAK_ADMIN_CLIENT_SECRET,
        timeout=settings.KEYCLOAK_TIMEOUT_SECONDS,
    )
