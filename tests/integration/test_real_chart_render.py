"""The console's values through the real charts: every option combination renders with `helm template`,
the local kube-apiserver accepts what it renders (server-side dry run), and the rendered manifests
carry what a real cluster needs (issue: values that a real cluster runs)."""

import base64
import contextlib
import copy
import itertools
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kubernetes import client, config

from devstack import config as devstack_config
from platforms.values import PLATFORM_NAME_MAX_LENGTH, ValuesInput, build_values
from tests.integration.server_dry_run import dry_run

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "charts" / "binderhub-platform"
KUBE_VERSION = devstack_config.KUBERNETES_VERSION
# What the API server's discovery tells helm at install time, which `helm template` cannot ask: without
# it the binderhub chart renders its PodDisruptionBudget as policy/v1beta1, gone since Kubernetes 1.25.
API_VERSIONS = ("--api-versions", "policy/v1/PodDisruptionBudget")
LONGEST = "l" + "x" * (PLATFORM_NAME_MAX_LENGTH - 2) + "l"
GRID = {
    "servers_per_user": (0, 1, 3, 50),
    "notebook_cpus": (Decimal("0.5"), Decimal("1"), Decimal("64")),
    "notebook_ram_gb": (1, 2, 512),
    "notebook_storage_gb": (1, 10, 2000),
    "registry_storage_gb": (10, 500),
}
EXPOSURES = {
    "zenith": {"exposure": "zenith"},
    "ingress-tls": {"exposure": "ingress", "ingress_base_domain": "apps.example.org", "ingress_tls": True},
    "ingress-plain": {"exposure": "ingress", "ingress_base_domain": "apps.example.org", "ingress_tls": False},
}
NAMES = ("a", LONGEST)


def spec(name: str = "physics", links: bool = False, **options) -> ValuesInput:
    known = {
        "binderhub": f"https://binderhub-{name}.example.org",
        "jupyterhub": f"https://jupyterhub-{name}.example.org",
    }
    base = {
        "name": name,
        "servers_per_user": 3,
        "notebook_cpus": Decimal("1"),
        "notebook_ram_gb": 2,
        "notebook_storage_gb": 10,
        "registry_storage_gb": 10,
        "registry_password": "registry-password",
        "registry_htpasswd": "binderhub:$2b$04$abcdefghijklmnopqrstuu7yaOeZ4yRHBSVDXXrX3ZTX8/ZHj8r7C",
        "oidc_client_id": f"binderhub-{name}",
        "oidc_client_secret": "oidc-secret",
        "oidc_issuer": "https://keycloak.example.org/realms/binderadmin",
        "registry_node_port": 30555,
        "hub_usage_token": "generated-usage-token",
        "links": known if links else {},
    }
    return ValuesInput(**(base | options))


def render(helm: str, values_input: ValuesInput, *flags: str) -> list[dict]:
    """`helm template` of the application chart with these values, as a release of the platform's name."""
    name = values_input.name
    result = subprocess.run(
        [
            helm,
            "template",
            name,
            str(CHART),
            "-n",
            name,
            "--kube-version",
            KUBE_VERSION,
            *API_VERSIONS,
            "-f",
            "-",
            *flags,
        ],
        input=json.dumps(build_values(values_input)),
        capture_output=True,
        text=True,
        # A render is a short-lived process: Go's garbage collector only adds to the grid's CPU time.
        env=os.environ | {"GOGC": "off"},
    )
    assert result.returncode == 0, f"{name}: {result.stderr.strip()[-500:]}"
    # libyaml's loader: the pure-Python one holds the GIL about as long as helm takes to render, so the
    # grid's renders queued behind their parsing, one at a time.
    return [document for document in yaml.load_all(result.stdout, Loader=yaml.CSafeLoader) if document]


def by_kind_and_name(documents: list[dict]) -> dict[tuple[str, str], dict]:
    return {(document["kind"], document["metadata"]["name"]): document for document in documents}


def hub_config(documents: list[dict]) -> dict:
    """The values the hub reads its configuration from (the z2jh Secret `hub`, key values.yaml)."""
    secret = by_kind_and_name(documents)[("Secret", "hub")]
    return yaml.safe_load(base64.b64decode(secret["data"]["values.yaml"]))


@pytest.fixture(scope="module")
def namespaces(kubeconfig_text):
    """The grid's release namespaces, which a dry run of their objects needs to exist."""
    core = client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text)))
    for name in NAMES:
        with contextlib.suppress(client.ApiException):
            core.create_namespace({"metadata": {"name": name}})
    yield NAMES
    for name in NAMES:
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(name)


def identity(document: dict) -> str:
    """What makes two rendered objects the same for the API server's checks: a Secret's data are opaque
    strings (and some are generated anew at every render), and pods' annotations carry their checksums."""
    normal = copy.deepcopy(document)
    if normal["kind"] == "Secret":
        normal["data"] = sorted(normal.get("data") or {})
    template = normal.get("spec", {}).get("template", {})
    if isinstance(template, dict):
        template.get("metadata", {}).pop("annotations", None)
    return json.dumps(normal, sort_keys=True, default=str)


def test_every_option_combination_renders_and_the_api_server_accepts_it(helm_executable, apis, namespaces):
    cases = [
        spec(name, links, **dict(zip(GRID, numbers, strict=True)), **EXPOSURES[exposure])
        for numbers in itertools.product(*GRID.values())
        for exposure in EXPOSURES
        for links in (False, True)
        for name in NAMES
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        rendered = list(pool.map(lambda case: (case.name, render(helm_executable, case)), cases))
    unique: dict[str, tuple[str, dict]] = {}
    for namespace, documents in rendered:
        for document in documents:
            unique.setdefault(identity(document), (namespace, document))
    with ThreadPoolExecutor(max_workers=4) as pool:
        refusals = [found for found in pool.map(lambda item: dry_run(apis, item[1], item[0]), unique.values()) if found]
    print(f"{len(cases)} combinations rendered; {len(unique)} distinct objects dry-run by the API server")
    assert len(cases) == 4 * 3 * 3 * 3 * 2 * 3 * 2 * 2
    assert refusals == []


def test_a_name_one_longer_than_the_limit_is_refused_by_the_api_server(helm_executable, apis, kubeconfig_text):
    """The limit is the charts' own: one character more and a derived name breaks Kubernetes' rules.

    (Our chart's schema refuses such a name first; skipped here to ask the API server itself.)
    """
    name = LONGEST + "x"
    documents = render(helm_executable, spec(name), "--skip-schema-validation")
    refusals = [found for document in documents if (found := dry_run(apis, document, "default"))]
    assert any("image-cleaner" in refusal for refusal in refusals), refusals


@pytest.fixture(scope="module")
def first_install(helm_executable) -> dict[tuple[str, str], dict]:
    """A platform's first install: no service links known yet."""
    return by_kind_and_name(render(helm_executable, spec("physics")))


def containers(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"]["containers"]


def env(container: dict) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def test_binderhub_reaches_the_hub_in_the_cluster_before_zenith_has_an_address(first_install):
    binder = first_install[("Deployment", "binder")]
    assert env(containers(binder)[0])["JUPYTERHUB_API_URL"] == "http://hub:8081/hub/api/"
    # The hub's NetworkPolicy admits pods with this label to its API port: the binder pod has it.
    label = "hub.jupyter.org/network-access-hub"
    assert binder["spec"]["template"]["metadata"]["labels"][label] == "true"
    policy = first_install[("NetworkPolicy", "hub")]
    selectors = [peer.get("podSelector", {}) for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])]
    assert {"matchLabels": {label: "true"}} in selectors


def host_paths(workload: dict) -> set[str]:
    volumes = workload["spec"]["template"]["spec"].get("volumes", [])
    return {volume["hostPath"]["path"] for volume in volumes if "hostPath" in volume}


def test_builds_run_in_podman_with_host_folders_of_their_own_and_no_docker_socket(first_install):
    builder = first_install[("DaemonSet", "physics-pink")]
    assert host_paths(builder) == {"/var/lib/binderadmin/physics/pink/storage", "/var/run/binderadmin/physics/pink"}
    workloads = [document for document in first_install.values() if document["kind"] in ("Deployment", "DaemonSet")]
    assert not [path for workload in workloads for path in host_paths(workload) if "docker" in path]
    registries = first_install[("ConfigMap", "physics-podman-registries")]["data"]["registries.conf"]
    assert 'location = "registry.physics.svc.cluster.local:5000"' in registries and "insecure = true" in registries
    mounts = {mount["name"]: mount["mountPath"] for mount in containers(builder)[0]["volumeMounts"]}
    assert mounts["registries"] == "/etc/containers/registries.conf.d/100-binderadmin.conf"


def test_the_image_cleaner_cleans_podmans_folders_and_cordons_no_node(first_install):
    cleaner = first_install[("DaemonSet", "physics-image-cleaner")]
    assert host_paths(cleaner) == {"/var/lib/binderadmin/physics/pink/storage", "/var/run/binderadmin/physics/pink"}
    variables = env(containers(cleaner)[0])
    assert variables["DOCKER_HOST"] == "unix:///var/run/podman.sock"
    assert "DOCKER_IMAGE_CLEANER_NODE_NAME" not in variables  # set only when cordoning


def test_builds_push_to_the_registry_service_and_kubelets_pull_through_its_node_port(first_install):
    service = first_install[("Service", "registry")]
    assert service["spec"]["type"] == "NodePort"
    assert [port["nodePort"] for port in service["spec"]["ports"]] == [30555]
    binder_values = yaml.safe_load(first_install[("Secret", "binder-secret")]["stringData"]["values.yaml"])
    assert (
        binder_values["config"]["BinderHub"]["image_prefix"]
        == "registry.physics.svc.cluster.local:5000/physics/binder-"
    )
    hub = hub_config(list(first_install.values()))
    hook = hub["hub"]["extraConfig"]["binderadmin-pull-address"]
    assert '"registry.physics.svc.cluster.local:5000/"' in hook and '"localhost:30555"' in hook
    # Run the hook as the hub would, on a pod of a built image and on one of another image.
    c = SimpleNamespace(KubeSpawner=SimpleNamespace())
    exec(hook, {"c": c})  # noqa: S102 - the configuration the hub itself executes
    built = SimpleNamespace(image="registry.physics.svc.cluster.local:5000/physics/binder-x:1")
    other = SimpleNamespace(image="quay.io/jupyterhub/k8s-singleuser-sample:4.2.0")
    c.KubeSpawner.modify_pod_hook(None, SimpleNamespace(spec=SimpleNamespace(containers=[built, other])))
    assert (built.image, other.image) == (
        "localhost:30555/physics/binder-x:1",
        "quay.io/jupyterhub/k8s-singleuser-sample:4.2.0",
    )


def test_notebook_pods_get_a_pull_secret_for_the_registry(first_install):
    secret = first_install[("Secret", "image-pull-secret")]
    auths = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]
    assert set(auths) == {"localhost:30555"}
    assert base64.b64decode(auths["localhost:30555"]["auth"]).decode() == "binderhub:registry-password"
    assert hub_config(list(first_install.values()))["imagePullSecret"]["automaticReferenceInjection"] is True


def test_the_notebook_volume_is_mounted_beside_the_repository_and_culling_keeps_users(first_install):
    hub = hub_config(list(first_install.values()))
    assert hub["singleuser"]["storage"]["homeMountPath"] == "/home/jovyan/data"
    assert hub["cull"]["users"] is False and hub["cull"]["removeNamedServers"] is False


def test_notebooks_reserve_part_of_their_limits(helm_executable):
    hub = hub_config(render(helm_executable, spec("physics", notebook_cpus=Decimal("64"), notebook_ram_gb=512)))
    assert hub["singleuser"]["cpu"] == {"limit": 64.0, "guarantee": 16.0}
    assert hub["singleuser"]["memory"] == {"limit": "512G", "guarantee": "262144M"}


def test_one_platform_makes_no_cluster_wide_scheduler(first_install):
    assert not [key for key in first_install if "user-scheduler" in key[1] or "user-placeholder" in key[1]]


def test_groups_come_from_the_userinfo_kept_in_auth_state(first_install):
    oauth = hub_config(list(first_install.values()))["hub"]["config"]["GenericOAuthenticator"]
    assert oauth["auth_state_groups_key"] == "oauth_user.groups"
    assert "claim_groups_key" not in oauth
    assert oauth["manage_groups"] is True


def test_the_hub_calls_keycloak_at_its_address_from_the_cluster(helm_executable):
    values_input = spec("physics", oidc_issuer_from_cluster="http://keycloak.auth.svc:8080/realms/binderadmin")
    oauth = hub_config(render(helm_executable, values_input))["hub"]["config"]["GenericOAuthenticator"]
    assert oauth["authorize_url"].startswith("https://keycloak.example.org/")
    assert oauth["token_url"] == "http://keycloak.auth.svc:8080/realms/binderadmin/protocol/openid-connect/token"
    assert oauth["userdata_url"].startswith("http://keycloak.auth.svc:8080/")


def test_ingress_certificates_from_cert_manager_and_volumes_of_the_chosen_storage_class(helm_executable):
    documents = by_kind_and_name(
        render(
            helm_executable,
            spec("physics", storage_class="fast", ingress_cluster_issuer="letsencrypt", **EXPOSURES["ingress-tls"]),
        )
    )
    for service in ("binderhub", "jupyterhub"):
        ingress = documents[("Ingress", service)]
        assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
        assert ingress["spec"]["tls"] == [
            {"hosts": [f"{service}-physics.apps.example.org"], "secretName": f"{service}-tls"}
        ]
    claims = [document for key, document in documents.items() if key[0] == "PersistentVolumeClaim"]
    assert claims and all(claim["spec"]["storageClassName"] == "fast" for claim in claims)
    assert hub_config(list(documents.values()))["singleuser"]["storage"]["dynamic"]["storageClass"] == "fast"


def test_the_hub_gets_the_consoles_usage_token_and_a_role_that_may_only_list_users(helm_executable):
    documents = by_kind_and_name(render(helm_executable, spec("physics", links=True)))
    secret = documents[("Secret", "hub")]["data"]
    # z2jh's jupyterhub_config.py reads each service's token from this key of the hub Secret.
    assert base64.b64decode(secret["hub.services.binderadmin-usage.apiToken"]).decode() == "generated-usage-token"
    hub = hub_config(list(documents.values()))["hub"]
    assert hub["loadRoles"]["binderadmin-usage"] == {
        "scopes": ["list:users", "read:servers"],
        "services": ["binderadmin-usage"],
    }
    assert set(hub["services"]) == {"binder", "binderadmin-usage"}  # BinderHub's own service is kept
