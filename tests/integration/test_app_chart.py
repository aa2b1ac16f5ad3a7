"""The application chart from the local chart repository: what it creates, what an upgrade changes, what it refuses.

The chart is the real BinderHub (with JupyterHub) and registry charts under ours; the local stack has no
node, so helm-without-node pauses their Deployments (devstack/helm_without_node.py).
"""

import base64
import uuid
from dataclasses import dataclass
from decimal import Decimal

import bcrypt
import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from devstack import config as devstack_config
from platforms.services.errors import BadInput
from platforms.services.helm import HelmService
from platforms.services.types import ClusterAccess, ReleaseSpec
from platforms.values import ValuesInput, build_values
from tests.stack_fixtures import free_node_port

pytestmark = pytest.mark.integration

ZENITH = ("zenith.stackhpc.com", "v1alpha1")
BASE_DOMAIN = "apps.example.org"


@dataclass(frozen=True)
class Apis:
    core: client.CoreV1Api
    apps: client.AppsV1Api
    networking: client.NetworkingV1Api
    custom: client.CustomObjectsApi


@pytest.fixture
def cluster(kubeconfig_text) -> ClusterAccess:
    return ClusterAccess(kubeconfig=kubeconfig_text, context="devstack")


@pytest.fixture
def apis(kubeconfig_text) -> Apis:
    api = config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text))
    return Apis(client.CoreV1Api(api), client.AppsV1Api(api), client.NetworkingV1Api(api), client.CustomObjectsApi(api))


@pytest.fixture
def helm(helm_executable) -> HelmService:
    return HelmService(helm_executable, timeout_seconds=120)


@pytest.fixture
def node_port(kubeconfig_text) -> int:
    return free_node_port(kubeconfig_text)


@pytest.fixture
def release(cluster, helm, apis):
    """A unique platform name; its release and namespace are removed afterwards, whatever happened."""
    name = f"app-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        try:
            helm.uninstall(name, cluster)
        finally:
            try:
                apis.core.delete_namespace(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise


def options(name: str, node_port: int | None = None, **changes) -> ValuesInput:
    """The launch form's usual answers; without node_port, a free one (test_devstack_zenith.py relies on that)."""
    base = {
        "name": name,
        "registry_node_port": node_port or free_node_port(devstack_config.KUBECONFIG.read_text()),
        "servers_per_user": 3,
        "notebook_cpus": Decimal("1.5"),
        "notebook_ram_gb": 2,
        "notebook_storage_gb": 10,
        "registry_storage_gb": 20,
        "registry_password": "registry-password",
        "registry_htpasswd": "binderhub:" + bcrypt.hashpw(b"registry-password", bcrypt.gensalt(rounds=4)).decode(),
        "oidc_client_id": f"platform-{name}",
        "oidc_client_secret": "oidc-secret",
        "oidc_issuer": f"{devstack_config.KEYCLOAK_URL}/realms/{devstack_config.REALM}",
    }
    return ValuesInput(**(base | changes))


def spec(cluster: ClusterAccess, name: str, version: str, values: dict) -> ReleaseSpec:
    return ReleaseSpec(
        name=name,
        chart=devstack_config.APP_CHART_NAME,
        repo=devstack_config.CHART_REPO_URL,
        version=version,
        cluster=cluster,
        values=values,
    )


def hub_config(apis: Apis, name: str) -> dict:
    """The jupyterhub chart's values as the hub reads them (z2jh keeps them in its Secret `hub`)."""
    secret = apis.core.read_namespaced_secret("hub", name)
    return yaml.safe_load(base64.b64decode(secret.data["values.yaml"]))


def binder_config(apis: Apis, name: str) -> dict:
    secret = apis.core.read_namespaced_secret("binder-secret", name)
    return yaml.safe_load(base64.b64decode(secret.data["values.yaml"]))["config"]["BinderHub"]


def zenith_objects(apis: Apis, name: str, plural: str) -> dict[str, dict]:
    items = apis.custom.list_namespaced_custom_object(*ZENITH, name, plural)["items"]
    return {item["metadata"]["name"]: item for item in items}


def test_install_creates_the_platform_and_an_upgrade_changes_it(cluster, helm, apis, release, node_port):
    first = helm.install_or_upgrade(spec(cluster, release, "0.1.0", build_values(options(release, node_port))))
    assert (first.revision, first.status, first.chart_version) == (1, "deployed", "0.1.0")

    deployments = {d.metadata.name: d for d in apis.apps.list_namespaced_deployment(release).items}
    assert set(deployments) == {"binder", "hub", "proxy", "registry"}
    # No pod can run on the local stack: helm-without-node paused them, and helm counted them ready.
    assert all(d.spec.paused for d in deployments.values())
    daemon_sets = {d.metadata.name: d for d in apis.apps.list_namespaced_daemon_set(release).items}
    assert set(daemon_sets) == {f"{release}-pink", f"{release}-image-cleaner"}
    for item in daemon_sets.values():  # the daemonset controller's word, which helm --wait waited for
        assert (item.status.observed_generation, item.status.desired_number_scheduled) == (1, 0)
    services = {s.metadata.name: s.spec for s in apis.core.list_namespaced_service(release).items}
    assert set(services) == {"binder", "hub", "proxy-public", "proxy-api", "registry"}
    assert [(p.port, services["binder"].type) for p in services["binder"].ports] == [(80, "ClusterIP")]
    assert [(p.port, services["proxy-public"].type) for p in services["proxy-public"].ports] == [(80, "ClusterIP")]
    assert [p.port for p in services["hub"].ports] == [8081]
    assert [(p.port, p.node_port, services["registry"].type) for p in services["registry"].ports] == [
        (5000, node_port, "NodePort")
    ]
    claims = {c.metadata.name: c for c in apis.core.list_namespaced_persistent_volume_claim(release).items}
    assert set(claims) == {"registry", "hub-db-dir"}
    assert claims["registry"].spec.resources.requests["storage"] == "20Gi"
    # Bound by devstack's volume binder; helm --atomic waited for it.
    assert {c.status.phase for c in claims.values()} == {"Bound"}

    reservations = zenith_objects(apis, release, "reservations")
    assert set(reservations) == {"binderhub", "jupyterhub"}
    for service, label in (("binderhub", "BinderHub"), ("jupyterhub", "JupyterHub")):
        meta = reservations[service]["metadata"]
        assert meta["annotations"]["azimuth.stackhpc.com/service-label"] == label
        assert meta["annotations"]["azimuth.stackhpc.com/service-icon-url"].startswith("https://")
        assert meta["labels"]["binderadmin.io/platform"] == release
        assert meta["labels"]["binderadmin.io/service"] == service
        assert reservations[service]["spec"] == {"credentialSecretName": f"{service}-zenith-credential"}
    clients = zenith_objects(apis, release, "clients")
    assert {n: (c["spec"]["reservationName"], c["spec"]["upstream"]["serviceName"]) for n, c in clients.items()} == {
        "binderhub": ("binderhub", "binder"),
        "jupyterhub": ("jupyterhub", "proxy-public"),
    }

    hub = hub_config(apis, release)
    assert hub["singleuser"]["cpu"]["limit"] == 1.5
    assert hub["singleuser"]["memory"]["limit"] == "2G"
    assert (hub["singleuser"]["storage"]["type"], hub["singleuser"]["storage"]["capacity"]) == ("dynamic", "10Gi")
    assert (hub["hub"]["allowNamedServers"], hub["hub"]["namedServerLimitPerUser"]) == (True, 3)
    assert hub["hub"]["config"]["JupyterHub"]["authenticator_class"] == "generic-oauth"
    assert f"/platforms/{release}" in hub["hub"]["config"]["GenericOAuthenticator"]["allowed_groups"]
    assert hub["imagePullSecret"]["registry"] == f"localhost:{node_port}"  # kubelets pull through the NodePort
    binder = binder_config(apis, release)
    assert binder["use_registry"] is True
    assert binder["image_prefix"] == f"registry.{release}.svc.cluster.local:5000/{release}/binder-"
    assert "hub_url" not in binder

    links = {"jupyterhub": "https://jupyterhub.zenith.example.org", "binderhub": "https://binder.zenith.example.org"}
    changed = options(
        release,
        node_port,
        notebook_cpus=Decimal("2"),
        notebook_ram_gb=4,
        notebook_storage_gb=25,
        servers_per_user=0,
        links=links,
    )
    second = helm.install_or_upgrade(spec(cluster, release, "0.2.0", build_values(changed)))
    assert (second.revision, second.status, second.chart_version) == (2, "deployed", "0.2.0")
    hub = hub_config(apis, release)
    assert hub["singleuser"]["cpu"]["limit"] == 2
    assert hub["singleuser"]["memory"]["limit"] == "4G"
    assert hub["singleuser"]["storage"]["capacity"] == "25Gi"
    assert hub["hub"]["namedServerLimitPerUser"] == 0
    assert hub["hub"]["services"]["binder"]["oauth_redirect_uri"] == "https://binder.zenith.example.org/oauth_callback"
    assert binder_config(apis, release)["hub_url"] == "https://jupyterhub.zenith.example.org"
    assert set(zenith_objects(apis, release, "reservations")) == {"binderhub", "jupyterhub"}
    assert all(d.spec.paused for d in apis.apps.list_namespaced_deployment(release).items)


def test_the_zenith_crds_let_a_test_play_the_operator(cluster, helm, apis, release, node_port):
    helm.install_or_upgrade(spec(cluster, release, "0.1.0", build_values(options(release, node_port))))
    status = {"status": {"phase": "Ready", "subdomain": "abc123", "fqdn": "abc123.zenith.example.org"}}
    apis.custom.patch_namespaced_custom_object_status(*ZENITH, release, "reservations", "jupyterhub", status)
    reservation = apis.custom.get_namespaced_custom_object(*ZENITH, release, "reservations", "jupyterhub")
    assert reservation["status"]["phase"] == "Ready"
    assert reservation["status"]["fqdn"] == "abc123.zenith.example.org"
    with pytest.raises(ApiException) as caught:  # the CRD's schema is enforced, like the real one's
        apis.custom.patch_namespaced_custom_object_status(
            *ZENITH, release, "reservations", "jupyterhub", {"status": {"phase": "Reserved"}}
        )
    assert caught.value.status == 422


def test_ingress_mode_creates_two_ingresses_at_the_expected_hosts(cluster, helm, apis, release, node_port):
    ingress = options(release, node_port, exposure="ingress", ingress_base_domain=BASE_DOMAIN, ingress_class="nginx")
    helm.install_or_upgrade(spec(cluster, release, "0.1.0", build_values(ingress)))

    ingresses = {i.metadata.name: i for i in apis.networking.list_namespaced_ingress(release).items}
    assert set(ingresses) == {"binderhub", "jupyterhub"}
    for service, upstream in (("binderhub", "binder"), ("jupyterhub", "proxy-public")):
        item = ingresses[service]
        host = f"{service}-{release}.{BASE_DOMAIN}"
        assert [rule.host for rule in item.spec.rules] == [host]
        backend = item.spec.rules[0].http.paths[0].backend.service
        assert (backend.name, backend.port.number) == (upstream, 80)
        assert item.spec.ingress_class_name == "nginx"
        assert [(t.hosts, t.secret_name) for t in item.spec.tls] == [([host], f"{service}-tls")]
        assert item.metadata.annotations["azimuth.stackhpc.com/service-label"] in ("BinderHub", "JupyterHub")
        assert item.metadata.labels["binderadmin.io/platform"] == release
    assert zenith_objects(apis, release, "reservations") == {}


def set_path(values: dict, path: str, value) -> dict:
    *parents, last = path.split("/")
    target = values
    for key in parents:
        target = target[key]
    target[last] = value
    return values


@pytest.mark.parametrize(
    "path, value, complaint",
    [
        ("binderhub/jupyterhub/singleuser/cpu/limit", "2", "/singleuser/cpu/limit"),  # the jupyterhub schema
        ("binderhub/registry/url", 5000, "/registry/url"),  # the binderhub schema
        ("binderhub/jupyterhub/hub/namedServerLimitPerUser", "3", "/hub/namedServerLimitPerUser"),
        ("platform/exposure", "nodeport", "/platform/exposure"),  # the application chart's own schema
    ],
)
def test_values_a_schema_rejects_are_bad_input(cluster, helm, apis, release, node_port, path, value, complaint):
    values = set_path(build_values(options(release, node_port)), path, value)
    with pytest.raises(BadInput, match=complaint):
        helm.install_or_upgrade(spec(cluster, release, "0.1.0", values))
    with pytest.raises(ApiException) as caught:  # refused before anything was created
        apis.core.read_namespaced_config_map("hub", release)
    assert caught.value.status == 404
