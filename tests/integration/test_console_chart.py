"""The console's own chart (charts/binderadmin) through the real helm and the local kube-apiserver: the
defaults and a grid of its options render, the API server accepts every object (server-side dry run),
the rendered pods keep what the chart promises, and helm refuses values the schema forbids.

Installing it on the node with PostgreSQL and Redis, and signing in through the pod, is not here yet:
the local stack's node does not run it (see the README)."""

import contextlib
import copy
import itertools
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from devstack import config as devstack_config
from tests.integration.server_dry_run import dry_run
from tests.unit.test_console_chart import BAD_VALUES, DEFAULTS, with_value

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "charts" / "binderadmin"
KUBE_VERSION = devstack_config.KUBERNETES_VERSION
NAMESPACE = "binderadmin-console-chart"
# helm's longest release name, without the chart's name in it (so the chart appends it).
LONGEST_RELEASE = "r" * 53
SECRET_SETTINGS = {
    "DJANGO_SECRET_KEY": "djangoSecretKey",
    "DATABASE_URL": "databaseUrl",
    "OIDC_RP_CLIENT_SECRET": "oidcClientSecret",
    "KEYCLOAK_ADMIN_CLIENT_SECRET": "keycloakAdminClientSecret",
    "FIELD_ENCRYPTION_KEYS": "fieldEncryptionKeys",
    "REDIS_URL": "redisUrl",
}
INGRESS = {
    "off": {"ingress": {"enabled": False}},
    "tls": {"ingress": {"enabled": True, "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"}}},
    "plain": {"ingress": {"enabled": True, "className": "nginx", "tls": {"enabled": False, "secretName": ""}}},
}
SECRETS = {
    "one-secret": {},
    "own-secrets": {
        "secrets": {
            "name": "console-settings",
            "databaseUrl": {"secret": "console-db-app", "key": "uri"},
            "redisUrl": {"secret": "console-redis", "key": "url"},
        },
        "redis": {"enabled": True},
    },
}
REPLICAS = {
    "one": {"web": {"replicas": 1}, "worker": {"replicas": 1}},
    "many": {"web": {"replicas": 3, "workers": 5}, "worker": {"replicas": 2, "processes": 4}},
    "none": {"web": {"replicas": 0}, "worker": {"replicas": 0}},
}
EXTRAS = {
    "defaults": {},
    "locked-down": {
        "networkPolicy": {
            "webFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
            "egress": {"restricted": True, "rules": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]},
        },
        "serviceAccount": {"create": False, "name": "console-runner"},
        "podDisruptionBudget": {"maxUnavailable": "50%"},
        "imagePullSecrets": [{"name": "registry-login"}],
        "config": {"hosts": ["console.example.org", "admin.example.org"], "env": {"LAUNCH_MAX_CPUS": "16"}},
    },
    "bare": {"networkPolicy": {"enabled": False}, "podDisruptionBudget": {"enabled": False}},
}


def merged(*overrides: dict) -> dict:
    """The chart's defaults with the overrides laid over them, as helm merges -f files."""

    def merge(base: dict, extra: dict) -> dict:
        for key, value in extra.items():
            base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) and value else value
        return base

    values = copy.deepcopy(DEFAULTS)
    for override in overrides:
        merge(values, copy.deepcopy(override))
    return values


def helm_template(helm: str, release: str, values: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [helm, "template", release, str(CHART), "-n", NAMESPACE, "--kube-version", KUBE_VERSION, "-f", "-"],
        input=json.dumps(values),
        capture_output=True,
        text=True,
    )


def render(helm: str, release: str, values: dict) -> list[dict]:
    result = helm_template(helm, release, values)
    assert result.returncode == 0, f"{release}: {result.stderr.strip()[-500:]}"
    # libyaml's loader: the pure-Python one takes about as long as helm's render.
    return [document for document in yaml.load_all(result.stdout, Loader=yaml.CSafeLoader) if document]


def of_kind(documents: list[dict], kind: str) -> list[dict]:
    return [document for document in documents if document["kind"] == kind]


def pod_specs(documents: list[dict]) -> dict[str, dict]:
    """Each workload's pod spec by its component (web, worker, migrate)."""
    workloads = of_kind(documents, "Deployment") + of_kind(documents, "Job")
    return {w["metadata"]["labels"]["app.kubernetes.io/component"]: w["spec"]["template"]["spec"] for w in workloads}


def check(values: dict, documents: list[dict]) -> None:
    """What the chart promises for these values, on what it rendered."""
    assert of_kind(documents, "Secret") == [] and of_kind(documents, "ConfigMap") == []
    specs = pod_specs(documents)
    assert set(specs) == {"web", "worker", "migrate"}
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in of_kind(documents, "Deployment")}
    assert deployments["web"]["spec"]["replicas"] == values["web"]["replicas"]
    assert deployments["worker"]["spec"]["replicas"] == values["worker"]["replicas"]
    for spec in specs.values():
        check_pod(values, spec)
    web, worker = specs["web"]["containers"][0], specs["worker"]["containers"][0]
    assert f"--workers={values['web']['workers']}" in web["args"]
    assert worker["args"] == ["python", "manage.py", "qcluster"]
    assert specs["migrate"]["containers"][0]["args"] == ["python", "manage.py", "migrate", "--noinput"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert web[probe]["httpGet"]["path"] == "/health/"
        assert web[probe]["httpGet"]["httpHeaders"] == [{"name": "Host", "value": values["config"]["hosts"][0]}]
        assert worker[probe]["exec"]["command"] == ["python", "manage.py", "health"]
    job = of_kind(documents, "Job")[0]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    ingresses = of_kind(documents, "Ingress")
    assert len(ingresses) == (1 if values["ingress"]["enabled"] else 0)
    if ingresses:
        assert [rule["host"] for rule in ingresses[0]["spec"]["rules"]] == values["config"]["hosts"]
        assert ("tls" in ingresses[0]["spec"]) == values["ingress"]["tls"]["enabled"]
    assert len(of_kind(documents, "ServiceAccount")) == (1 if values["serviceAccount"]["create"] else 0)
    policies = of_kind(documents, "NetworkPolicy")
    assert len(policies) == (2 if values["networkPolicy"]["enabled"] else 0)
    if policies:
        restricted = values["networkPolicy"]["egress"]["restricted"]
        assert [("Egress" in p["spec"]["policyTypes"]) for p in policies] == [restricted, False]
    assert len(of_kind(documents, "PodDisruptionBudget")) == (2 if values["podDisruptionBudget"]["enabled"] else 0)


def check_pod(values: dict, spec: dict) -> None:
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}} in spec["volumes"]
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    env = {item["name"]: item for item in container["env"]}
    assert len(env) == len(container["env"]), "a variable set twice"
    expected = {name for name in SECRET_SETTINGS if name != "REDIS_URL" or values["redis"]["enabled"]}
    from_secrets = {name for name, item in env.items() if "valueFrom" in item}
    assert from_secrets == expected
    for name in expected:
        setting = values["secrets"][SECRET_SETTINGS[name]]
        reference = env[name]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": setting.get("secret") or values["secrets"]["name"], "key": setting["key"]}
    assert env["DJANGO_ALLOWED_HOSTS"]["value"] == ",".join(values["config"]["hosts"])
    for name, value in values["config"]["env"].items():
        assert env[name]["value"] == value


@pytest.fixture(scope="module")
def namespace(kubeconfig_text):
    core = client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text)))
    with contextlib.suppress(client.ApiException):
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    yield NAMESPACE
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(NAMESPACE)


def test_the_defaults_render_and_the_api_server_accepts_them(helm_executable, apis, namespace):
    documents = render(helm_executable, "binderadmin", DEFAULTS)
    check(DEFAULTS, documents)
    kinds = sorted(document["kind"] for document in documents)
    assert kinds == [
        "Deployment",
        "Deployment",
        "Job",
        "NetworkPolicy",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    assert [found for document in documents if (found := dry_run(apis, document, NAMESPACE))] == []


def test_every_option_combination_renders_and_the_api_server_accepts_it(helm_executable, apis, namespace):
    cases = [
        (release, merged(INGRESS[i], SECRETS[s], REPLICAS[r], EXTRAS[e]))
        for i, s, r, e in itertools.product(INGRESS, SECRETS, REPLICAS, EXTRAS)
        for release in ("binderadmin", LONGEST_RELEASE)
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        rendered = list(pool.map(lambda case: (case[1], render(helm_executable, *case)), cases))
    unique = {}
    for values, documents in rendered:
        check(values, documents)
        for document in documents:
            unique.setdefault(json.dumps(document, sort_keys=True), document)
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = pool.map(lambda document: dry_run(apis, document, NAMESPACE), unique.values())
        refusals = [found for found in answers if found]
    print(f"{len(cases)} combinations rendered; {len(unique)} distinct objects dry-run by the API server")
    assert len(cases) == 3 * 2 * 3 * 3 * 2
    assert refusals == []


@pytest.mark.parametrize(("path", "value", "why"), BAD_VALUES, ids=[case[2] for case in BAD_VALUES])
def test_helm_refuses_values_the_schema_forbids(helm_executable, path, value, why):
    result = helm_template(helm_executable, "binderadmin", with_value(path, value))
    assert result.returncode != 0, f"helm accepted {why}"
    assert "values don't meet the specifications" in result.stderr
