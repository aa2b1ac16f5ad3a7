"""Pure: a platform's options -> the complete Helm values of the application chart (no I/O).

The application chart (charts/binderhub-platform) takes three blocks:
- `platform`: our own values (name, exposure, service labels), checked by its values.schema.json;
- `binderhub`: the upstream binderhub chart's values, whose `jupyterhub:` block goes to the
  jupyterhub chart (schemas in ../shared/upstream/);
- `docker-registry`: the registry chart's values (persistent storage of the chosen size).
Mapping of each option: ARCHITECTURE.md, "Values".
"""

from dataclasses import dataclass, field
from decimal import Decimal

from platforms.access_rules import platform_group

ICON_BASE = "https://raw.githubusercontent.com/jupyterhub"
SERVICE_LABELS = {
    "binderhub": ("BinderHub", f"{ICON_BASE}/binderhub/main/docs/source/_static/logo.png"),
    "jupyterhub": ("JupyterHub", f"{ICON_BASE}/jupyterhub/main/share/jupyterhub/static/images/jupyterhub-80.png"),
}


def service_label(name: str) -> str:
    """A service's display name: the console's own, never what a cluster annotates; else its name."""
    return SERVICE_LABELS[name][0] if name in SERVICE_LABELS else name


# The longest name a platform may have. The charts derive object names and label values from the
# release name (= the platform's), which Kubernetes caps at 63 characters; the longest so derived is
# the BinderHub chart's image cleaner, "<name>-image-cleaner". tests/integration/test_real_chart_render.py
# proves the limit against the real templates and API server.
LONGEST_DERIVED_SUFFIX = "-image-cleaner"
PLATFORM_NAME_MAX_LENGTH = 63 - len(LONGEST_DERIVED_SUFFIX)
REGISTRY_PORT = 5000
REGISTRY_USERNAME = "binderhub"
BINDER_OAUTH_CLIENT_ID = "service-binder"
# The registry chart's objects are named by fullnameOverride: one namespace a platform, so a plain
# name is unique and no object name grows with the platform's (twuni's own rule would append
# "-docker-registry" to the release name, and a volume "<that>-config" breaks at 41 characters).
REGISTRY_NAME = "registry"
# The hub's Service in the platform's namespace (z2jh with its default empty fullnameOverride).
HUB_URL_LOCAL = "http://hub:8081"
# z2jh's NetworkPolicy admits to the hub only pods with this label; BinderHub's pod calls the hub API.
HUB_ACCESS_LABEL = "hub.jupyter.org/network-access-hub"
# The hub service whose token the console reads usage with (platforms.services.jupyterhub), and all it
# may do: list the users with their servers, nothing more (JupyterHub's scopes:
# https://jupyterhub.readthedocs.io/en/stable/rbac/scopes.html).
USAGE_SERVICE = "binderadmin-usage"
USAGE_SCOPES = ("list:users", "read:servers")
# Notebook volumes go here, beside the repository's files in /home/jovyan, instead of over them.
NOTEBOOK_VOLUME_PATH = "/home/jovyan/data"
# What a notebook server reserves on its node, as a fraction of its limit (the form's number).
CPU_GUARANTEE_FRACTION = Decimal("0.25")
MEMORY_GUARANTEE_FRACTION = Decimal("0.5")


@dataclass(frozen=True)
class ValuesInput:
    """Everything the values depend on, gathered from the database and settings by the caller."""

    name: str
    servers_per_user: int
    notebook_cpus: Decimal
    notebook_ram_gb: int
    notebook_storage_gb: int
    registry_storage_gb: int
    exposure: str = "zenith"
    ingress_base_domain: str = ""
    ingress_class: str = ""
    ingress_tls: bool = True
    registry_password: str = ""
    # "binderhub:<bcrypt hash of registry_password>", made once with the password (deploy.ensure_secrets).
    registry_htpasswd: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    # The realm's issuer as browsers reach it, and as the hub pod reaches it from inside the cluster
    # for its server-to-server calls (token, userinfo); empty: the same address.
    oidc_issuer: str = ""
    oidc_issuer_from_cluster: str = ""
    # The cluster's NodePort of the platform's registry (Platform.registry_node_port).
    registry_node_port: int | None = None
    storage_class: str = ""
    ingress_cluster_issuer: str = ""
    admin_group: str = "/admins"
    all_platforms_group: str = "/platform-users"
    # Service links known so far (name -> URL); empty until Zenith or the Ingress exposes them.
    links: dict[str, str] = field(default_factory=dict)
    # The token of the hub service USAGE_SERVICE, made once by the console (deploy.ensure_secrets).
    hub_usage_token: str = ""


def registry_host(name: str) -> str:
    """Where BinderHub's builds push: the registry's Service, by the cluster's DNS (REGISTRY_NAME)."""
    return f"{REGISTRY_NAME}.{name}.svc.cluster.local:{REGISTRY_PORT}"


def pink_paths(name: str) -> dict[str, str]:
    """Host folders of the platform's Podman builder: its own, so two platforms on a node do not share."""
    return {
        "hostStorageDir": f"/var/lib/binderadmin/{name}/pink/storage",
        "hostSocketDir": f"/var/run/binderadmin/{name}/pink",
    }


def ingress_urls(name: str, base_domain: str, tls: bool) -> dict[str, str]:
    """The URLs Ingresses expose a platform's services at; known before deploying, unlike Zenith's."""
    scheme = "https" if tls else "http"
    return {service: f"{scheme}://{service}-{name}.{base_domain}" for service in SERVICE_LABELS}


def known_links(spec: ValuesInput) -> dict[str, str]:
    """Links recorded from the cluster, or with Ingress the ones the chart will create."""
    if spec.exposure == "ingress":
        return ingress_urls(spec.name, spec.ingress_base_domain, spec.ingress_tls) | spec.links
    return dict(spec.links)


def build_values(spec: ValuesInput) -> dict:
    """The complete values for `helm upgrade --install`: always all of them, never reused."""
    links = known_links(spec)
    return {
        "platform": platform_block(spec),
        "binderhub": binderhub_block(spec, links),
        "docker-registry": registry_block(spec),
    }


def platform_block(spec: ValuesInput) -> dict:
    return {
        "name": spec.name,
        "exposure": spec.exposure,
        "ingress": {
            "baseDomain": spec.ingress_base_domain,
            "className": spec.ingress_class,
            "tls": spec.ingress_tls,
            "clusterIssuer": spec.ingress_cluster_issuer,
        },
        "services": {
            service: {"label": label, "iconUrl": icon, "description": f"{label} of {spec.name}"}
            for service, (label, icon) in SERVICE_LABELS.items()
        },
        "registry": {"pushHost": registry_host(spec.name)},
    }


def pull_host(spec: ValuesInput) -> str:
    """Where kubelets pull the built images: the registry's NodePort on their own node. A kubelet cannot
    resolve the cluster's DNS names, and containerd speaks plain HTTP only to localhost."""
    if spec.registry_node_port is None:
        raise ValueError(f"platform {spec.name} has no registry node port yet")
    return f"localhost:{spec.registry_node_port}"


def registry_block(spec: ValuesInput) -> dict:
    persistence: dict = {"enabled": True, "size": f"{spec.registry_storage_gb}Gi"}
    if spec.storage_class:
        persistence["storageClass"] = spec.storage_class
    return {
        "fullnameOverride": REGISTRY_NAME,
        "persistence": persistence,
        "secrets": {"htpasswd": spec.registry_htpasswd},
        "service": {"type": "NodePort", "nodePort": spec.registry_node_port},
    }


def binderhub_block(spec: ValuesInput, links: dict[str, str]) -> dict:
    host = registry_host(spec.name)
    binder_config: dict = {
        "use_registry": True,
        "image_prefix": f"{host}/{spec.name}/binder-",
        "auth_enabled": True,
        # In-cluster, so the first install renders before Zenith has an address, and BinderHub never
        # calls the hub API through the public proxy (where Zenith's sign-in would stop it).
        "hub_url_local": HUB_URL_LOCAL,
    }
    if links.get("jupyterhub"):
        binder_config["hub_url"] = links["jupyterhub"]
    return {
        "config": {"BinderHub": binder_config},
        "registry": {"url": f"http://{host}", "username": REGISTRY_USERNAME, "password": spec.registry_password},
        "service": {"type": "ClusterIP"},
        "deployment": {"labels": {HUB_ACCESS_LABEL: "true"}},
        # Podman in a DaemonSet: builds work on containerd nodes, which have no Docker socket for "host".
        "imageBuilderType": "pink",
        "pink": pink_paths(spec.name) | {"daemonset": podman_registry_config(spec.name)},
        # The cleaner frees the builder's disk (it knows pink's folders); cordoning a shared cluster's
        # nodes while it cleans is not one platform's call to make.
        "imageCleaner": {"enabled": True, "cordon": False},
        "jupyterhub": jupyterhub_block(spec, links),
    }


def podman_registry_config(name: str) -> dict:
    """Podman pushes to the platform's registry over plain HTTP inside the cluster: say it may."""
    return {
        "extraVolumes": [{"name": "registries", "configMap": {"name": f"{name}-podman-registries"}}],
        "extraVolumeMounts": [
            {
                "name": "registries",
                "mountPath": "/etc/containers/registries.conf.d/100-binderadmin.conf",
                "subPath": "registries.conf",
            }
        ],
    }


def jupyterhub_block(spec: ValuesInput, links: dict[str, str]) -> dict:
    hub: dict = {
        "allowNamedServers": True,
        # JupyterHub reads 0 as "no limit", which is what the form's 0 means.
        "namedServerLimitPerUser": spec.servers_per_user,
        "redirectToServer": False,
        "config": {
            "JupyterHub": {"authenticator_class": "generic-oauth"},
            "BinderSpawner": {"auth_enabled": True},
            "GenericOAuthenticator": oauth_config(spec, links),
        },
        "loadRoles": {"user": {"scopes": ["self", "access:services"]}},
        "extraConfig": {"binderadmin-pull-address": pull_address_config(spec)},
    }
    if spec.storage_class:
        hub["db"] = {"pvc": {"storageClassName": spec.storage_class}}
    services: dict = {}
    if links.get("binderhub"):
        services["binder"] = {
            "oauth_client_id": BINDER_OAUTH_CLIENT_ID,
            "oauth_redirect_uri": f"{links['binderhub']}/oauth_callback",
            "oauth_no_confirm": True,
        }
    if spec.hub_usage_token:
        services[USAGE_SERVICE] = {"apiToken": spec.hub_usage_token}
        hub["loadRoles"][USAGE_SERVICE] = {"scopes": list(USAGE_SCOPES), "services": [USAGE_SERVICE]}
    if services:
        hub["services"] = services
    return {
        "hub": hub,
        "proxy": {"service": {"type": "ClusterIP"}},
        # The cluster's own scheduler places notebooks: a scheduler (and its ClusterRole) per platform,
        # and placeholder pods, are for large dedicated clusters.
        "scheduling": {"userScheduler": {"enabled": False}, "userPlaceholder": {"enabled": False}},
        # Idle servers stop after an hour; users are not deleted, since KubeSpawner would delete their
        # volumes with them, and named servers are kept (stopped), so nobody's files go.
        "cull": {"enabled": True, "users": False, "removeNamedServers": False, "timeout": 3600},
        "singleuser": singleuser_block(spec),
        # Notebook pods pull the built images with the registry's password (z2jh makes this Secret
        # and gives it to the user pods).
        "imagePullSecret": {
            "create": True,
            "registry": pull_host(spec),
            "username": REGISTRY_USERNAME,
            "password": spec.registry_password,
        },
    }


def pull_address_config(spec: ValuesInput) -> str:
    """Hub configuration that points notebook pods at pull_host for the images BinderHub pushed."""
    push, pull = registry_host(spec.name), pull_host(spec)
    return f"""# BinderHub pushes to {push}, which kubelets cannot reach: pull the same images from {pull}.
def pull_through_the_node_port(spawner, pod):
    for container in pod.spec.containers:
        if container.image.startswith("{push}/"):
            container.image = "{pull}" + container.image[len("{push}"):]
    return pod


c.KubeSpawner.modify_pod_hook = pull_through_the_node_port
"""


def singleuser_block(spec: ValuesInput) -> dict:
    """Each notebook server: its limits (the form's numbers), what it reserves, and its volume."""
    cpu_guarantee = float(spec.notebook_cpus * CPU_GUARANTEE_FRACTION)
    memory_guarantee_mb = int(spec.notebook_ram_gb * 1024 * MEMORY_GUARANTEE_FRACTION)
    return {
        "cmd": "jupyterhub-singleuser",
        # The schema wants numbers for CPUs, not strings.
        "cpu": {"limit": float(spec.notebook_cpus), "guarantee": cpu_guarantee},
        "memory": {"limit": f"{spec.notebook_ram_gb}G", "guarantee": f"{memory_guarantee_mb}M"},
        "storage": {
            "type": "dynamic",
            "capacity": f"{spec.notebook_storage_gb}Gi",
            "homeMountPath": NOTEBOOK_VOLUME_PATH,
            **({"dynamic": {"storageClass": spec.storage_class}} if spec.storage_class else {}),
        },
    }


def allowed_groups(spec: ValuesInput) -> list[str]:
    """Keycloak groups whose members may use the platform's JupyterHub (and so its BinderHub)."""
    return [
        spec.admin_group,
        spec.all_platforms_group,
        platform_group(spec.name),
        platform_group(spec.name, "jupyterhub"),
        platform_group(spec.name, "binderhub"),
    ]


def oauth_config(spec: ValuesInput, links: dict[str, str]) -> dict:
    """JupyterHub's generic OAuthenticator against the platform's Keycloak client."""
    browser = f"{spec.oidc_issuer}/protocol/openid-connect"
    # The hub pod itself calls these: the cluster must reach them.
    server = f"{spec.oidc_issuer_from_cluster or spec.oidc_issuer}/protocol/openid-connect"
    config = {
        "client_id": spec.oidc_client_id,
        "client_secret": spec.oidc_client_secret,
        "authorize_url": f"{browser}/auth",
        "token_url": f"{server}/token",
        "userdata_url": f"{server}/userinfo",
        "logout_redirect_url": f"{browser}/logout",
        "scope": ["openid", "profile", "email", "groups"],
        "username_claim": "preferred_username",
        # oauthenticator 17 keeps the userinfo answer under auth_state["oauth_user"]; this replaces the
        # deprecated claim_groups_key.
        "auth_state_groups_key": "oauth_user.groups",
        "manage_groups": True,
        "allowed_groups": allowed_groups(spec),
        "admin_groups": [spec.admin_group],
    }
    if links.get("jupyterhub"):
        config["oauth_callback_url"] = f"{links['jupyterhub']}/hub/oauth_callback"
    return config
