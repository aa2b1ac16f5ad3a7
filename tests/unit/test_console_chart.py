"""The console's own chart: its values schema accepts the defaults and refuses bad values; the image
recipe builds what the chart runs by default."""

import copy
import json
from pathlib import Path

import pytest
import yaml
from jsonschema.validators import validator_for

from devstack.images import recipes

CHART = Path(__file__).resolve().parents[2] / "charts" / "binderadmin"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())

# (path, value, why it must be refused); shared with the integration test that asks the real helm.
BAD_VALUES = [
    ("web.replicas", -1, "a negative replica count"),
    ("web.replicas", "2", "a number given as a string"),
    ("web.workers", 0, "a web server without workers"),
    ("worker.processes", 0, "a worker without task processes"),
    ("config.hosts", [], "no host: Django would refuse every request, the probes too"),
    ("config.hosts", ["https://console.example.org"], "a URL where a host name goes"),
    ("config.hosts", ["Console_Host"], "not a DNS name"),
    ("config.keycloakUrl", "keycloak.example.org", "a URL without its scheme"),
    ("config.keycloakBackchannelUrl", "keycloak:8080", "a URL without its scheme"),
    ("config.adminGroup", "admins", "a group path without its leading slash"),
    ("config.env", {"DATABASE_URL": "postgresql://u:pw@db/x"}, "a secret setting as a plain value"),
    ("config.env", {"DJANGO_SECRET_KEY_FILE": "/etc/key"}, "a _FILE setting the chart does not mount"),
    ("config.env", {"KEYCLOAK_URL": "https://other"}, "a setting the chart sets already"),
    ("config.env", {"LAUNCH_MAX_CPUS": 32}, "a setting that is not a string"),
    ("config.env", {"launch_max_cpus": "32"}, "a lower-case variable name"),
    ("secrets.databaseUrl", {"key": ""}, "a secret setting without its key"),
    ("secrets.djangoSecretKey", {"value": "s3cret"}, "a secret value in the values"),
    ("secrets.name", "", "no Secret to read from"),
    ("secrets.redisUrl", {"secret": "Bad_Name", "key": "url"}, "a Secret name Kubernetes refuses"),
    ("djangoSecretKey", "s3cret", "an unknown top-level key"),
    ("image.pullPolicy", "Sometimes", "an unknown pull policy"),
    ("image.tag", "v1 latest", "a tag with a space"),
    ("service.port", 70000, "a port out of range"),
    ("ingress.tls.secretName", "", "TLS on without its certificate's Secret"),
    ("podDisruptionBudget.maxUnavailable", 0, "a budget that blocks every eviction"),
    ("redis.enabled", "yes", "a boolean given as a string"),
]


def with_value(path: str, value) -> dict:
    values = copy.deepcopy(DEFAULTS)
    *parents, last = path.split(".")
    node = values
    for part in parents:
        node = node[part]
    node[last] = value
    if path.startswith("ingress."):
        values["ingress"]["enabled"] = True
    return values


def errors(values: dict) -> list[str]:
    validator = validator_for(SCHEMA)(SCHEMA)
    return [error.message for error in validator.iter_errors(values)]


def test_the_schema_is_a_valid_schema():
    validator_for(SCHEMA).check_schema(SCHEMA)


def test_the_defaults_pass_the_schema():
    assert errors(DEFAULTS) == []


@pytest.mark.parametrize(("path", "value", "why"), BAD_VALUES, ids=[case[2] for case in BAD_VALUES])
def test_the_schema_refuses(path, value, why):
    assert errors(with_value(path, value)), f"accepted {why}: {path}={value!r}"


def test_a_setting_may_name_its_own_secret_and_ingress_tls_may_be_off():
    values = with_value("secrets.databaseUrl", {"secret": "console-db-app", "key": "uri"})
    values["ingress"] = {
        "enabled": True,
        "className": "nginx",
        "annotations": {},
        "tls": {"enabled": False, "secretName": ""},
    }
    values["config"]["env"] = {"LAUNCH_MAX_CPUS": "32", "Q_CLUSTER_NAME": "console-a"}
    assert errors(values) == []


def test_the_image_recipe_makes_the_image_the_chart_runs_by_default():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert recipes.RECIPES["binderadmin"].ref == f"{DEFAULTS['image']['repository']}:{chart['appVersion']}"


def test_the_image_holds_the_console_and_its_requirements_but_no_bytecode():
    files = dict(recipes.RECIPES["binderadmin"].files)
    home = recipes.CONSOLE_HOME
    for needed in ("manage.py", "requirements.txt", "binderadmin/settings.py", "platforms/views/health.py"):
        assert f"{home}/{needed}" in files
    assert any(path.startswith(f"{home}/templates/") for path in files)
    assert any(path.startswith(f"{home}/static/") for path in files)
    assert not [path for path in files if "__pycache__" in path or path.endswith(".pyc")]
