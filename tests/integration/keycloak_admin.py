"""A small test helper for Keycloak's admin REST API, used to arrange users for sign-in tests."""

import requests

from devstack import config

ADMIN_API = f"{config.KEYCLOAK_URL}/admin/realms/{config.REALM}"


def admin_session() -> requests.Session:
    """A requests session authenticated as the realm's admin-API service account."""
    token = requests.post(
        f"{config.KEYCLOAK_URL}/realms/{config.REALM}/protocol/openid-connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": config.ADMIN_CLIENT_ID,
            "client_secret": config.ADMIN_CLIENT_SECRET,
        },
        timeout=10,
    )
    token.raise_for_status()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return session


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
