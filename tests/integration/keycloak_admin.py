"""A small test helper for Keycloak's admin REST API: arranges users and groups, and checks what the console did."""

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import requests

from devstack import config

ADMIN_API = f"{config.KEYCLOAK_URL}/admin/realms/{config.REALM}"


def bearer_session(realm: str, grant: dict[str, str]) -> requests.Session:
    """A requests session carrying the access token that `grant` obtains from the realm."""
    token = requests.post(f"{config.KEYCLOAK_URL}/realms/{realm}/protocol/openid-connect/token", data=grant, timeout=10)
    token.raise_for_status()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return session


def admin_session() -> requests.Session:
    """A requests session authenticated as the realm's admin-API service account."""
    return bearer_session(
        config.REALM,
        {
            "grant_type": "client_credentials",
            "client_id": config.ADMIN_CLIENT_ID,
            "client_secret": config.ADMIN_CLIENT_SECRET,
        },
    )


def create_user(username: str, password: str, groups: list[str] = ()) -> str:
    """Create an enabled user with a password; return its id (replacing any user of that name)."""
    api = admin_session()
    for old in api.get(f"{ADMIN_API}/users", params={"username": username, "exact": "true"}, timeout=10).json():
        api.delete(f"{ADMIN_API}/users/{old['id']}", timeout=10).raise_for_status()
    response = api.post(
        f"{ADMIN_API}/users",
        json={
            "username": username,
            "enabled": True,
            "email": f"{username}@example.org",
            "emailVerified": True,
            "firstName": username.title(),
            "lastName": "Test",
            "groups": list(groups),
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.headers["Location"].rsplit("/", 1)[1]


def set_enabled(user_id: str, enabled: bool) -> None:
    api = admin_session()
    api.put(f"{ADMIN_API}/users/{user_id}", json={"enabled": enabled}, timeout=10).raise_for_status()


def delete_user(user_id: str) -> None:
    admin_session().delete(f"{ADMIN_API}/users/{user_id}", timeout=10)


def realm_admin_session() -> requests.Session:
    """A session as Keycloak's bootstrap admin: partialImport needs manage-realm, which the console's
    service account rightly lacks. Its tokens live 60 s, so take a fresh session per batch."""
    return bearer_session(
        "master",
        {
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": config.KEYCLOAK_ADMIN_USER,
            "password": config.KEYCLOAK_ADMIN_PASSWORD,
        },
    )


def import_users(prefix: str, count: int, groups: list[str] = (), batch: int = 1000) -> list[str]:
    """Create `<prefix>-00000`… users fast through the realm's partialImport; return their ids.

    Each has an email `<username>@example.org` and the names `Bench <n>` / `<prefix>`, and is a
    member of the given groups (which must exist).
    """
    ids: list[str] = []
    for start in range(0, count, batch):
        users = [
            {
                "username": f"{prefix}-{n:05}",
                "enabled": True,
                "email": f"{prefix}-{n:05}@example.org",
                "firstName": f"Bench {n}",
                "lastName": prefix,
                "groups": list(groups),
            }
            for n in range(start, min(start + batch, count))
        ]
        response = realm_admin_session().post(
            f"{ADMIN_API}/partialImport", json={"ifResourceExists": "SKIP", "users": users}, timeout=120
        )
        response.raise_for_status()
        ids += [result["id"] for result in response.json()["results"] if result.get("id")]
    return ids


def delete_users(ids: list[str], batch: int = 500) -> None:
    """Delete users, eight at a time (Keycloak has no bulk delete)."""
    for start in range(0, len(ids), batch):
        session = realm_admin_session()
        urls = [f"{ADMIN_API}/users/{user_id}" for user_id in ids[start : start + batch]]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(partial(session.delete, timeout=30), urls))


def group_member_names(path: str) -> set[str]:
    """Usernames of the group's direct members (at most 1000), or an empty set if there is no group."""
    api = admin_session()
    found = api.get(f"{ADMIN_API}/group-by-path{path}", timeout=10)
    if found.status_code == 404:
        return set()
    members = api.get(f"{ADMIN_API}/groups/{found.json()['id']}/members", params={"max": 1000}, timeout=10)
    return {member["username"] for member in members.json()}


def group_exists(path: str) -> bool:
    return group_id(path) is not None


def group_id(path: str) -> str | None:
    """The group's id, or None when there is no group at that path."""
    found = admin_session().get(f"{ADMIN_API}/group-by-path{path}", timeout=10)
    return found.json()["id"] if found.status_code == 200 else None


def delete_group(path: str) -> None:
    """Delete a group as a person would in Keycloak's own console."""
    api = admin_session()
    found = api.get(f"{ADMIN_API}/group-by-path{path}", timeout=10)
    if found.status_code == 200:
        api.delete(f"{ADMIN_API}/groups/{found.json()['id']}", timeout=10).raise_for_status()


def client(client_id: str) -> dict | None:
    """The client's representation (secret included), or None."""
    found = admin_session().get(f"{ADMIN_API}/clients", params={"clientId": client_id}, timeout=10).json()
    return found[0] if found else None


def add_to_group(user_id: str, path: str) -> None:
    """Add a user to a group as a person would in Keycloak's own console."""
    api = admin_session()
    group = api.get(f"{ADMIN_API}/group-by-path{path}", timeout=10)
    group.raise_for_status()
    api.put(f"{ADMIN_API}/users/{user_id}/groups/{group.json()['id']}", timeout=10).raise_for_status()


def delete_client(client_id: str) -> None:
    """Delete a client as a person would in Keycloak's own console."""
    found = client(client_id)
    if found:
        admin_session().delete(f"{ADMIN_API}/clients/{found['id']}", timeout=10).raise_for_status()
