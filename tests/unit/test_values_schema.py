"""build_values() output passes the upstream chart schemas, merged with the chart defaults exactly as Helm does.

How Helm validates (../shared/upstream/README.md): each chart's schema checks that chart's values
*after* merging: the chart's values.yaml, overlaid with what its parent passes down, overlaid with
what the user sent, with `global` copied in. So every check here builds the same merge.
"""

import atexit
import copy
import hashlib
import itertools
import json
import shutil
import tarfile
import tempfile
from decimal import Decimal
from functools import cache
from pathlib import Path

import bcrypt
import pytest
import yaml
from jsonschema.validators import validator_for

from platforms.values import ValuesInput, build_values

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "charts" / "binderhub-platform"


def unpack_vendored_charts() -> Path:
    """The upstream charts vendored in the application chart, unpacked once, as helm reads them."""
    folder = Path(tempfile.mkdtemp(prefix="vendored-charts-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for archive in (APP / "charts").glob("*.tgz"):
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
    return folder


VENDORED = unpack_vendored_charts()
BINDERHUB = VENDORED / "binderhub"
JUPYTERHUB = BINDERHUB / "charts" / "jupyterhub"
REGISTRY = VENDORED / "docker-registry"
# Reference data beside the repository (not in it): the z2jh `main` schema has no copy in the repo.
# z2jh main's schema and defaults, copied into the repository (see its README) so CI checks them too.
JUPYTERHUB_MAIN = REPO / "tests" / "fixtures" / "upstream" / "jupyterhub-main"

GRID = {
    "servers_per_user": (0, 1, 3, 100),
    "notebook_cpus": (Decimal("0.5"), Decimal("1"), Decimal("1.5"), Decimal("64")),
    "notebook_ram_gb": (1, 2, 512),
    "notebook_storage_gb": (1, 10, 2000),
    "registry_storage_gb": (10, 2000),
}
LINKS = {"binderhub": "https://binder-abc.zenith.example.org", "jupyterhub": "https://hub-abc.zenith.example.org"}


def coalesce(defaults: dict, overrides: dict) -> dict:
    """Helm's merge: maps key by key, lists and scalars replaced, an explicit null deletes the key."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = coalesce(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@cache
def load(path: Path):
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


@cache
def validator(path: Path):
    """A validator of the draft the schema names in `$schema`, as Helm picks it."""
    schema = load(path)
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def errors(schema: Path, values: dict) -> list[str]:
    return sorted(f"{e.json_path}: {e.message[:160]}" for e in validator(schema).iter_errors(values))


def merged_views(values: dict, jupyterhub_chart: Path = JUPYTERHUB) -> dict[Path, dict]:
    """What Helm validates against each schema when the application chart is installed with `values`.

    jupyterhub_chart: the folder with the jupyterhub values.yaml and values.schema.json to use. The
    registry chart has no schema: its values are checked by rendering (test_real_chart_render.py).
    """
    app = load(APP / "values.yaml")
    binderhub_defaults = load(BINDERHUB / "values.yaml")
    top = coalesce(app, values)
    binderhub = coalesce(binderhub_defaults, top["binderhub"]) | {"global": {}}
    jupyterhub = coalesce(
        coalesce(load(jupyterhub_chart / "values.yaml"), binderhub_defaults["jupyterhub"]),
        top["binderhub"]["jupyterhub"],
    ) | {"global": {}}
    return {
        APP / "values.schema.json": top,
        BINDERHUB / "values.schema.json": binderhub,
        jupyterhub_chart / "values.schema.json": jupyterhub,
    }


def all_errors(values: dict, jupyterhub_chart: Path = JUPYTERHUB) -> list[str]:
    views = merged_views(values, jupyterhub_chart)
    return [f"{schema.parent.name}{error}" for schema, view in views.items() for error in errors(schema, view)]


REGISTRY_HTPASSWD = "binderhub:" + bcrypt.hashpw(b"generated-registry-password", bcrypt.gensalt(rounds=4)).decode()


def spec(**changes) -> ValuesInput:
    base = {
        "name": "physics-lab",
        "servers_per_user": 3,
        "notebook_cpus": Decimal("1"),
        "notebook_ram_gb": 2,
        "notebook_storage_gb": 10,
        "registry_storage_gb": 10,
        "registry_password": "generated-registry-password",
        "registry_htpasswd": REGISTRY_HTPASSWD,
        "oidc_client_id": "platform-physics-lab",
        "oidc_client_secret": "generated-oidc-secret",
        "oidc_issuer": "https://keycloak.example.org/realms/binderadmin",
        "registry_node_port": 30500,
        "hub_usage_token": "generated-usage-token",
    }
    return ValuesInput(**(base | changes))


def exposure_options(exposure: str) -> dict:
    if exposure == "ingress":
        return {"exposure": "ingress", "ingress_base_domain": "apps.example.org", "ingress_class": "nginx"}
    return {"exposure": "zenith"}


def jupyterhub_main() -> Path:
    return JUPYTERHUB_MAIN


@pytest.mark.parametrize("exposure", ["zenith", "ingress"])
@pytest.mark.parametrize("links", [{}, LINKS], ids=["no-links", "links"])
def test_every_option_combination_passes_every_schema(exposure, links):
    """The whole grid (288 option sets per case) against the app, binderhub and jupyterhub 4.2.0 schemas."""
    failures = {}
    for combination in itertools.product(*GRID.values()):
        options = dict(zip(GRID, combination, strict=True)) | exposure_options(exposure) | {"links": links}
        found = all_errors(build_values(spec(**options)))
        if found:
            failures[str(combination)] = found
    assert failures == {}


@pytest.mark.parametrize("exposure", ["zenith", "ingress"])
@pytest.mark.parametrize("links", [{}, LINKS], ids=["no-links", "links"])
def test_the_jupyterhub_values_also_pass_the_z2jh_main_schema(exposure, links):
    """The same grid (less the registry size, which jupyterhub never sees) against the stricter z2jh `main`."""
    main = jupyterhub_main()
    axes = {key: values for key, values in GRID.items() if key != "registry_storage_gb"}
    failures = {}
    for combination in itertools.product(*axes.values()):
        options = dict(zip(axes, combination, strict=True)) | exposure_options(exposure) | {"links": links}
        view = merged_views(build_values(spec(**options)), main)[main / "values.schema.json"]
        found = errors(main / "values.schema.json", view)
        if found:
            failures[str(combination)] = found
    assert failures == {}


@pytest.mark.parametrize("name", ["a", "physics-lab", "x" * 49, "a1-b2-c3"])
def test_platform_names_the_console_accepts_pass_the_app_schema(name):
    assert all_errors(build_values(spec(name=name))) == []


# sha256 prefixes of the upstream files, as ../shared/upstream/README.md records them. The packaged
# charts' values.yaml differ from the repositories' only in the image tags their publishing sets.
UPSTREAM_SHA256 = {
    BINDERHUB / "values.schema.json": "3b32bf56f63889db",
    JUPYTERHUB / "values.schema.json": "5a523f2a39defcb9",
    JUPYTERHUB_MAIN / "values.schema.json": "32a1f1c3f5d5e865",
    JUPYTERHUB_MAIN / "values.yaml": "e9fb4f193457a4b9",
}


@pytest.mark.parametrize(
    "path", list(UPSTREAM_SHA256), ids=lambda p: p.name if p.is_relative_to(REPO) else str(p.relative_to(VENDORED))
)
def test_the_schemas_and_defaults_are_byte_copies_of_upstream(path):
    assert hashlib.sha256(path.read_bytes()).hexdigest()[:16] == UPSTREAM_SHA256[path]


# Negative controls: the same checks do fail when the values are wrong, so a pass above means something.


def broken(path: str, value) -> dict:
    """Good values with the value at the slash-separated path replaced (or deleted, for None)."""
    values = build_values(spec(links=LINKS))
    *parents, last = path.split("/")
    target = values
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = value
    return values


@pytest.mark.parametrize(
    "path, value, schema, where",
    [
        ("binderhub/jupyterhub/singleuser/cpu/limit", "2", "jupyterhub", "$.singleuser.cpu.limit"),
        ("binderhub/jupyterhub/hub/namedServerLimitPerUser", "3", "jupyterhub", "$.hub.namedServerLimitPerUser"),
        ("binderhub/jupyterhub/singleuser/storage/type", "ephemeral", "jupyterhub", "$.singleuser.storage.type"),
        ("binderhub/jupyterhub/singleuser/storage/capacity", 10, "jupyterhub", "$.singleuser.storage.capacity"),
        ("binderhub/jupyterhub/hub/unknownKey", True, "jupyterhub", "$.hub"),
        ("binderhub/registry/url", 123, "binderhub", "$.registry.url"),
        ("binderhub/service/type", "Public", "binderhub", "$.service.type"),
        ("binderhub/notAKey", {}, "binderhub", "$"),
        ("platform/exposure", "nodeport", "binderhub-platform", "$.platform.exposure"),
        ("platform/name", "Physics_Lab", "binderhub-platform", "$.platform.name"),
        ("platform/name", "x" * 50, "binderhub-platform", "$.platform.name"),
        ("platform/services/jupyterhub/colour", "red", "binderhub-platform", "$.platform.services.jupyterhub"),
        ("platform/ingress/tls", "yes", "binderhub-platform", "$.platform.ingress.tls"),
        ("notAKey", 1, "binderhub-platform", "$"),
    ],
)
def test_a_wrong_value_is_rejected_by_the_schema_that_owns_it(path, value, schema, where):
    found = all_errors(broken(path, value))
    assert found, f"{path}={value!r} was accepted"
    assert all(error.startswith(f"{schema}{where}") for error in found), found


def test_ingress_exposure_without_a_base_domain_is_rejected():
    values = build_values(spec(exposure="ingress", ingress_base_domain=""))
    assert {e.split(":")[0] for e in all_errors(values)} == {"binderhub-platform$.platform.ingress.baseDomain"}


def test_a_string_cpu_limit_is_also_rejected_by_the_z2jh_main_schema():
    main = jupyterhub_main()
    view = merged_views(broken("binderhub/jupyterhub/singleuser/cpu/limit", "2"), main)[main / "values.schema.json"]
    assert [e.split(":")[0] for e in errors(main / "values.schema.json", view)] == ["$.singleuser.cpu.limit"]


def test_user_values_alone_fail_so_the_merge_with_defaults_matters():
    values = build_values(spec())
    assert errors(BINDERHUB / "values.schema.json", values["binderhub"])
    assert errors(JUPYTERHUB / "values.schema.json", values["binderhub"]["jupyterhub"])
