"""Local images: cache keys follow the recipe's content, names match the charts, settings reach the OCI config."""

import dataclasses
import shlex
import tarfile

import pytest
import yaml

from devstack import config, images
from devstack.images import build, recipes
from devstack.images.__main__ import main as cli
from devstack.images.recipes import GoProgram, OciConfig, Recipe


@pytest.fixture
def upstream(tmp_path, monkeypatch):
    folder = tmp_path / "upstream"
    (folder / "k8s-hub").mkdir(parents=True)
    (folder / "k8s-hub" / "requirements.txt").write_text("jupyterhub==5.3.0\n")
    monkeypatch.setattr(recipes, "UPSTREAM_IMAGES", folder)
    return folder


def key_of(recipe: Recipe) -> str:
    return build.recipe_key(recipe, build.recipe_inputs(recipe))


def test_recipe_key_is_stable_for_the_same_recipe_and_files(upstream):
    assert key_of(recipes.HUB) == key_of(recipes.HUB)


def test_recipe_key_changes_when_the_upstream_requirements_change(upstream):
    before = key_of(recipes.HUB)
    (upstream / "k8s-hub" / "requirements.txt").write_text("jupyterhub==5.3.1\n")
    assert key_of(recipes.HUB) != before


def test_recipe_key_changes_with_any_setting_of_the_recipe(upstream):
    before = key_of(recipes.HUB)
    assert key_of(dataclasses.replace(recipes.HUB, packages=(*recipes.HUB.packages, "jq"))) != before
    changed_config = dataclasses.replace(recipes.HUB.config, user="1000")
    assert key_of(dataclasses.replace(recipes.HUB, config=changed_config)) != before


def test_recipe_key_changes_with_the_builder_version(upstream, monkeypatch):
    before = key_of(recipes.HUB)
    monkeypatch.setattr(build, "BUILDER_VERSION", build.BUILDER_VERSION + "-next")
    assert key_of(recipes.HUB) != before


def test_recipe_key_follows_our_pause_source(tmp_path, monkeypatch):
    source = tmp_path / "images" / "pause"
    source.mkdir(parents=True)
    (source / "main.go").write_text("package main\n")
    monkeypatch.setattr(recipes, "PAUSE_SOURCE", source)
    before = key_of(recipes.PAUSE)
    (source / "main.go").write_text("package main\n\nfunc main() {}\n")
    assert key_of(recipes.PAUSE) != before


def test_missing_upstream_requirements_say_which_setting_to_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(recipes, "UPSTREAM_IMAGES", tmp_path / "nowhere")
    with pytest.raises(build.DevstackError, match="DEVSTACK_UPSTREAM_IMAGES"):
        build.recipe_inputs(recipes.HUB)


def test_only_a_finished_archive_of_the_same_key_is_reused(tmp_path):
    key = "ab" * 32
    archive = build.archive_path(recipes.PAUSE, key, tmp_path)
    assert build.cached_archive(recipes.PAUSE, key, tmp_path) is None
    archive.write_bytes(b"tar")
    # The metadata is written last, so an archive without it was cut short.
    assert build.cached_archive(recipes.PAUSE, key, tmp_path) is None
    archive.with_suffix(".json").write_text("{}")
    assert build.cached_archive(recipes.PAUSE, key, tmp_path) == archive
    assert build.cached_archive(recipes.PAUSE, "cd" * 32, tmp_path) is None


def test_a_cached_image_is_not_built_again(upstream, tmp_path, monkeypatch):
    monkeypatch.setattr(build, "IMAGES_DIR", tmp_path)
    key = key_of(recipes.HUB)
    archive = build.archive_path(recipes.HUB, key, tmp_path)
    archive.write_bytes(b"tar")
    archive.with_suffix(".json").write_text('{"seconds": 42.0}')
    monkeypatch.setattr(build, "_overlay", lambda *args: pytest.fail("a cached image was built again"))
    image = build.build(recipes.HUB)
    assert (image.archive, image.cached, image.seconds, image.ref) == (archive, True, 42.0, recipes.HUB.ref)


@pytest.mark.parametrize(
    ("ref", "stored"),
    [
        ("registry:2.8.1", "docker.io/library/registry:2.8.1"),
        ("podman/stable:v5", "docker.io/podman/stable:v5"),
        ("quay.io/jupyterhub/k8s-hub:4.2.0", "quay.io/jupyterhub/k8s-hub:4.2.0"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost:5000/app:1", "localhost:5000/app:1"),
    ],
)
def test_canonical_ref_is_the_name_containerd_stores(ref, stored):
    assert build.canonical_ref(ref) == stored


@pytest.mark.parametrize("ref", ["registry", "localhost:5000/app"])
def test_canonical_ref_refuses_a_reference_without_tag(ref):
    with pytest.raises(ValueError, match="no tag"):
        build.canonical_ref(ref)


def test_recipes_carry_the_exact_references_the_charts_use():
    assert {recipe.ref for recipe in recipes.RECIPES.values()} <= {
        "quay.io/jupyterhub/k8s-hub:4.2.0",
        "quay.io/jupyterhub/configurable-http-proxy:4.6.3",
        "quay.io/jupyterhub/k8s-binderhub:1.0.0-0.dev.git.2226.haf9ca8b",
        "quay.io/jupyterhub/docker-image-cleaner:1.0.0-beta.3",
        "registry:2.8.1",
        "quay.io/podman/stable:v5.8.1",
        "quay.io/jupyterhub/k8s-singleuser-sample:4.2.0",
        "registry.k8s.io/pause:3.10",
        # The console's own chart (charts/binderadmin; its test checks the reference).
        "localhost/binderadmin:0.1.0",
    }
    assert all(name == recipe.name for name, recipe in recipes.RECIPES.items())


def test_umoci_config_args_set_what_the_dockerfile_sets():
    oci = OciConfig(
        entrypoint=("tini", "--"),
        cmd=("jupyterhub", "--config", "/x.py"),
        user="jovyan",
        workdir="/srv/jupyterhub",
        env=(("LANG", "C.UTF-8"),),
        ports=("8081", "53/udp"),
    )
    assert build.umoci_config_args(oci) == [
        "--clear=config.entrypoint",
        "--clear=config.cmd",
        "--clear=config.env",
        "--config.entrypoint=tini",
        "--config.entrypoint=--",
        "--config.cmd=jupyterhub",
        "--config.cmd=--config",
        "--config.cmd=/x.py",
        "--config.user=jovyan",
        "--config.workingdir=/srv/jupyterhub",
        "--config.env=LANG=C.UTF-8",
        "--config.exposedports=8081/tcp",
        "--config.exposedports=53/udp",
    ]


def test_umoci_config_args_of_an_empty_config_only_clear_umocis_defaults():
    assert build.umoci_config_args(OciConfig()) == [
        "--clear=config.entrypoint",
        "--clear=config.cmd",
        "--clear=config.env",
    ]


def test_steps_run_in_the_chroot_with_the_build_trust_store_and_the_machines_proxy():
    hook = build.step_command("pip install 'a b'", {"HTTPS_PROXY": "http://proxy:3128", "SECRET": "x"})
    words = shlex.split(hook.replace('"$1"', "ROOT"))
    assert words[:4] == ["chroot", "ROOT", "/usr/bin/env", "-i"]
    assert words[-3:] == ["/bin/sh", "-euxc", "pip install 'a b'"]
    assert f"PIP_CERT={build.BUILD_CA}" in words
    assert f"NODE_EXTRA_CA_CERTS={build.BUILD_CA}" in words
    assert "HTTPS_PROXY=http://proxy:3128" in words
    assert not any(word.startswith("SECRET=") for word in words)


def test_mmdebstrap_installs_build_packages_only_for_the_steps(tmp_path):
    recipe = Recipe(
        name="t",
        ref="example.org/t:1",
        config=OciConfig(),
        packages=("python3", "tini"),
        build_packages=("gcc",),
        steps=("echo one", "echo two"),
    )
    argv = build.mmdebstrap_argv(recipe, tmp_path / "overlay", tmp_path / "rootfs", environ={})
    assert argv[:4] == ["mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory"]
    assert "--include=python3,tini" in argv
    hooks = [arg.removeprefix("--customize-hook=") for arg in argv if arg.startswith("--customize-hook=")]
    assert hooks[0].startswith(f"cp -a {tmp_path / 'overlay'}/. ")
    assert "apt-get install --yes --no-install-recommends gcc" in hooks[1]
    assert [("echo one" in hook, "echo two" in hook) for hook in hooks[2:4]] == [(True, False), (False, True)]
    assert "apt-get purge --yes --auto-remove gcc" in hooks[4]
    # The trust store copy and the machine's resolver go before the image is packed.
    assert build.BUILD_DIR in hooks[-1] and "/etc/resolv.conf" in hooks[-1]
    assert argv[-5:-3] == ["bookworm", str(tmp_path / "rootfs")]
    assert argv[-3].endswith(" bookworm main") and argv[-1].endswith(" bookworm-security main")


def test_mmdebstrap_is_not_used_for_an_image_without_debian():
    with pytest.raises(ValueError, match="no Debian"):
        build.mmdebstrap_argv(recipes.PAUSE, build.IMAGES_DIR, build.IMAGES_DIR)


def test_go_mod_repeats_the_replacements_a_module_needs():
    program = GoProgram(
        dest="umoci",
        package="github.com/opencontainers/umoci/cmd/umoci",
        module="github.com/opencontainers/umoci",
        version="v0.6.0",
        replaces=(("github.com/vbatts/go-mtree", "github.com/cyphar/go-mtree v0.0.0-1"),),
    )
    text = build.go_mod(program)
    assert text.startswith("module devstack.local/umoci\n")
    assert "replace github.com/vbatts/go-mtree => github.com/cyphar/go-mtree v0.0.0-1\n" in text


def test_cli_refuses_an_unknown_image_name(capsys):
    with pytest.raises(SystemExit):
        cli(["build", "pause", "nonesuch"])
    assert "no recipe for nonesuch" in capsys.readouterr().err


def test_cli_lists_each_recipe_with_its_chart_reference(capsys):
    assert cli(["list"]) == 0
    out = capsys.readouterr().out
    assert all(recipe.ref in out for recipe in recipes.RECIPES.values())


def test_archive_refuses_a_name_without_recipe():
    with pytest.raises(images.DevstackError, match="no image recipe named 'nonesuch'"):
        images.archive("nonesuch")


def test_archive_returns_the_cached_archive_of_a_known_image(upstream, tmp_path, monkeypatch):
    monkeypatch.setattr(build, "IMAGES_DIR", tmp_path)
    archive = build.archive_path(recipes.HUB, key_of(recipes.HUB), tmp_path)
    archive.write_bytes(b"tar")
    archive.with_suffix(".json").write_text("{}")
    assert images.archive("hub") == archive


def binderhub_chart_defaults() -> dict:
    """The values.yaml of the BinderHub chart vendored in the application chart."""
    (archive,) = (config.APP_CHART_DIR / "charts").glob("binderhub-*.tgz")
    with tarfile.open(archive) as tar:
        return yaml.safe_load(tar.extractfile("binderhub/values.yaml"))


def test_image_cleaner_recipe_is_the_image_the_binderhub_chart_runs():
    image = binderhub_chart_defaults()["imageCleaner"]["image"]
    assert recipes.RECIPES["image-cleaner"].ref == f"{image['name']}:{image['tag']}"


def test_image_cleaner_installs_only_exact_pins_of_distinct_packages():
    names = [pin.split("==")[0].lower() for pin in recipes.IMAGE_CLEANER_PINS]
    assert all(pin.count("==") == 1 and pin.split("==")[1] for pin in recipes.IMAGE_CLEANER_PINS)
    assert len(names) == len(set(names))
    assert "docker-image-cleaner" in names


def test_image_cleaner_build_fails_when_the_installed_cleaner_cannot_be_imported():
    steps = recipes.IMAGE_CLEANER.steps
    install = next(i for i, step in enumerate(steps) if "docker-image-cleaner==" in step)
    check = next(i for i, step in enumerate(steps) if "import" in step and "docker_image_cleaner" in step)
    # mmdebstrap runs each step under `sh -e`, so a failing check after the install stops the build.
    assert install < check
    assert recipes.IMAGE_CLEANER.config.entrypoint == ("tini", "--", "docker-image-cleaner")
