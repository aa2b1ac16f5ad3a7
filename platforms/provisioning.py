"""A platform's access in Keycloak: its groups and its services' OIDC client, ensured and removed idempotently.

Run by the worker only (deploy operations and the repair task), never during a request.
"""

import logging

from platforms.access import PLATFORM_GROUP_PREFIX, platform_group, platform_groups, realm_groups
from platforms.services import keycloak
from platforms.values import ValuesInput, known_links

logger = logging.getLogger(__name__)


def oidc_client_id(platform_name: str) -> str:
    """The Keycloak client the platform's JupyterHub (and Zenith's proxy) sign users in with."""
    return f"binderhub-{platform_name}"


def redirect_uris(spec: ValuesInput) -> list[str]:
    """Where Keycloak may send users back to: JupyterHub's OAuth callback, and with Zenith the
    callback of Zenith's OIDC proxy in front of each service (https://<fqdn>/_oidc/callback)."""
    links = known_links(spec)
    uris = []
    if links.get("jupyterhub"):
        uris.append(f"{links['jupyterhub']}/hub/oauth_callback")
    if spec.exposure == "zenith":
        uris += [f"{url}/_oidc/callback" for _, url in sorted(links.items()) if url]
    return uris


def ensure_platform_access(spec: ValuesInput) -> str:
    """Ensure the platform's groups and client (secret and redirect URIs as given); say what was ensured.

    Raises the directory's ServiceErrors.
    """
    directory = keycloak.get_directory()
    paths = list(platform_groups(spec.name).values())
    for path in paths:
        directory.ensure_group(path)
    uris = redirect_uris(spec)
    client = directory.ensure_client(
        spec.oidc_client_id, f"BinderHub platform {spec.name}", spec.oidc_client_secret, uris
    )
    logger.info("platform=%s keycloak groups and client %s ensured", spec.name, client.client_id)
    return f"Keycloak: groups {', '.join(paths)} and client {client.client_id} ({len(uris)} redirect URIs) ensured."


def remove_platform_access(platform_name: str) -> str:
    """Remove the platform's client and groups (gone already is fine); say what was removed."""
    directory = keycloak.get_directory()
    client_id = oidc_client_id(platform_name)
    removed_client = directory.remove_client(client_id)
    removed_groups = directory.remove_group(platform_group(platform_name))
    logger.info("platform=%s keycloak client and groups removed", platform_name)
    return (
        f"Keycloak: client {client_id} {'removed' if removed_client else 'already gone'}, "
        f"groups {platform_group(platform_name)} {'removed' if removed_groups else 'already gone'}."
    )


def ensure_realm_groups() -> str:
    """Ensure the realm-wide groups (admins, platform-users, and the parent of platform groups)."""
    directory = keycloak.get_directory()
    paths = [*realm_groups().values(), PLATFORM_GROUP_PREFIX.rstrip("/")]
    for path in paths:
        directory.ensure_group(path)
    return f"Keycloak: groups {', '.join(paths)} ensured."
