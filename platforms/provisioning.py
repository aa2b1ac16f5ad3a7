"""A platform's access in Keycloak: its groups and its services' OIDC client, ensured and removed idempotently.

Run by the worker only (deploy operations and the repair task), never during a request.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from platforms.access_rules import PLATFORM_GROUP_PREFIX, SERVICES, platform_group, platform_groups, realm_groups
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


def ensure_platform_access(spec: ValuesInput, likely_new: bool = False) -> str:
    """Ensure the platform's groups and client (secret and redirect URIs as given); say what was ensured.

    `likely_new` (a platform's first install): create them without looking for them first, which
    saves two of seven requests (and Keycloak's CPU, which shares small machines with helm).
    Raises the directory's ServiceErrors.
    """
    directory = keycloak.get_directory()
    paths = list(platform_groups(spec.name).values())
    directory.ensure_groups(paths, likely_new=likely_new)
    uris = redirect_uris(spec)
    client = directory.ensure_client(
        spec.oidc_client_id, f"BinderHub platform {spec.name}", spec.oidc_client_secret, uris, likely_new=likely_new
    )
    logger.info("platform=%s keycloak groups and client %s ensured", spec.name, client.client_id)
    if uris:
        back = f"sends sign-ins back to {', '.join(uris)}"
    else:
        back = "will send sign-ins back to the services once their addresses are known"
    return f"Keycloak: groups {', '.join(paths)} ensured; client {client.client_id} ensured, and {back}."


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
    directory.ensure_groups(paths)
    return f"Keycloak: groups {', '.join(paths)} ensured."


@dataclass(frozen=True)
class LostAccess:
    """What Keycloak no longer has: realm groups, and per platform name its groups and client."""

    realm: tuple[str, ...] = ()
    platforms: dict[str, tuple[str, ...]] = field(default_factory=dict)


def lost_access(platform_names: Iterable[str]) -> LostAccess:
    """Compare Keycloak with what the realm and these platforms should have there; list what is missing.

    The admin API calls do not grow with the number of platforms: one per realm group, then one
    listing of the platform groups with their service subgroups and one of the platforms' clients.
    Raises the directory's ServiceErrors.
    """
    directory = keycloak.get_directory()
    parent = PLATFORM_GROUP_PREFIX.rstrip("/")
    realm = [path for path in realm_groups().values() if directory.find_group(path) is None]
    present = directory.paths_below(parent, SERVICES)
    if present is None:
        realm.append(parent)
    clients = directory.client_ids(oidc_client_id(""))
    platforms = {}
    for name in platform_names:
        missing = [path for path in platform_groups(name).values() if path not in (present or ())]
        if oidc_client_id(name) not in clients:
            missing.append(f"client {oidc_client_id(name)}")
        if missing:
            platforms[name] = tuple(missing)
    return LostAccess(realm=tuple(realm), platforms=platforms)
