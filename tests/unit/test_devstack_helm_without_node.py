"""The local stack's helm-without-node pauses every Deployment on install and upgrade, and is plain helm otherwise."""

import json
import subprocess

import pytest
import yaml

from devstack import config, helm_without_node, procs, stack

RENDERED = """---
# Source: demo/templates/config.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: hub
data:
  checksum: "123e4"
  spec: |
    ---
    kind: Deployment
---
# Source: demo/templates/hub.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hub
spec:
    replicas: 1
    template:
      spec:
        containers: [{name: hub, image: "hub:1"}]
---
# Source: demo/templates/cleaner.yaml
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: cleaner
spec:
  updateStrategy:
    type: RollingUpdate
"""


def documents(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_every_deployment_is_paused_and_every_other_document_is_left_byte_for_byte():
    paused = helm_without_node.pause_deployments(RENDERED)
    before, after = documents(RENDERED), documents(paused)
    assert [d["kind"] for d in after] == ["ConfigMap", "Deployment", "DaemonSet"]
    assert after[1]["spec"] == before[1]["spec"] | {"paused": True}
    assert after[0] == before[0] and after[2] == before[2]
    assert paused.replace("spec:\n    paused: true\n", "spec:\n") == RENDERED  # one line added, nothing else
    assert "# Source: demo/templates/hub.yaml" in paused


@pytest.mark.parametrize(
    "spec",
    [
        "spec: {replicas: 2, paused: false}",  # flow style: no line to add one under
        "spec:\n  paused: false\n  replicas: 2",  # an explicit no: a second key would be ambiguous
    ],
)
def test_a_deployment_that_cannot_take_one_more_line_becomes_json_and_is_paused(spec):
    head = "---\n# Source: demo/templates/odd.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: odd\n"
    rendered = f"{head}{spec}\n"
    paused = helm_without_node.pause_deployments(rendered)
    [document] = documents(paused)
    assert document["spec"] == {"replicas": 2, "paused": True}
    assert "# Source: demo/templates/odd.yaml" in paused
    assert json.loads(paused.split("\n")[-2])["metadata"] == {"name": "odd"}


def test_an_already_paused_deployment_and_junk_are_passed_through():
    paused = "---\nkind: Deployment\nspec:\n  paused: true\n"
    junk = "---\nkind: Deployment\nspec: [unclosed\n"
    assert helm_without_node.pause_deployments(paused + junk) == paused + junk


def fake_helm(tmp_path):
    """A helm that prints the arguments it was given, one a line."""
    helm = tmp_path / "helm-real"
    helm.write_text('#!/bin/sh\nfor arg in "$@"; do echo "$arg"; done\n')
    helm.chmod(0o755)
    return helm


def run(wrapper, *args) -> list[str]:
    return subprocess.run([str(wrapper), *args], capture_output=True, text=True, check=True).stdout.splitlines()


def test_the_wrapper_adds_the_post_renderer_to_install_and_upgrade_only(tmp_path):
    helm = fake_helm(tmp_path)
    wrapper = helm_without_node.write_wrapper(tmp_path / "bin", helm, tmp_path / "my python")
    assert wrapper == tmp_path / "bin" / "helm-without-node"
    renderer = ["--post-renderer", str(tmp_path / "my python"), "--post-renderer-args", helm_without_node.__file__]
    for command in ("install", "upgrade"):
        args = [command, "p1", "chart", "--values", "-"]
        assert run(wrapper, *args) == [*args, *renderer]
    assert run(wrapper, "list", "-A", "--filter", "^a b$") == ["list", "-A", "--filter", "^a b$"]
    assert run(wrapper, "get", "manifest", "upgrade") == ["get", "manifest", "upgrade"]


def test_the_wrapper_is_rewritten_only_when_it_changed(tmp_path):
    helm = fake_helm(tmp_path)
    wrapper = helm_without_node.write_wrapper(tmp_path, helm)
    written = wrapper.stat().st_mtime_ns
    helm_without_node.write_wrapper(tmp_path, helm)
    assert wrapper.stat().st_mtime_ns == written
    helm_without_node.write_wrapper(tmp_path, tmp_path / "another-helm")
    assert "another-helm" in wrapper.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["helm-real", "helm-without-node"]  # no leftovers


def test_the_real_helm_runs_the_post_renderer_as_the_wrapper_gives_it(tmp_path):
    helm = config.BIN_DIR / f"helm-{config.HELM_VERSION}"
    if not helm.exists():
        pytest.skip("the pinned helm is not built yet (python -m devstack up builds it)")
    chart = tmp_path / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    body = RENDERED.split("# Source: demo/templates/hub.yaml\n")[1].split("---")[0]
    (chart / "templates" / "hub.yaml").write_text(body)
    # `helm template` takes the same post-renderer flags as install and upgrade, and needs no cluster.
    renderer = run(helm_without_node.write_wrapper(tmp_path / "bin", fake_helm(tmp_path)), "install")[1:]
    result = subprocess.run([str(helm), "template", "demo", str(chart), *renderer], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    [deployment] = documents(result.stdout)
    assert deployment["spec"]["paused"] is True


def test_the_console_and_tests_get_the_wrapper_as_their_helm():
    assert stack.console_env()["HELM_EXECUTABLE"] == str(config.BIN_DIR / "helm-without-node")


def test_a_controller_manager_with_other_controllers_is_restarted_with_ours(monkeypatch):
    started, stopped = [], []
    monkeypatch.setattr(procs, "running_pid", lambda name: 4242)
    monkeypatch.setattr(procs, "command_line", lambda pid: ["kcm", "--controllers=namespace-controller"])
    monkeypatch.setattr(procs, "stop", stopped.append)
    monkeypatch.setattr(procs, "start", lambda name, argv, **kwargs: started.append(argv))
    monkeypatch.setattr(procs, "wait_until", lambda *args: None)
    monkeypatch.setattr(stack.tools, "kube_controller_manager", lambda: config.BIN_DIR / "kcm")
    stack.up_controller_manager()
    assert stopped == ["kube-controller-manager"]
    [argv] = started
    assert f"--controllers={stack.CONTROLLERS}" in argv
    assert "daemonset-controller" in stack.CONTROLLERS.split(",")

    started.clear()
    monkeypatch.setattr(procs, "command_line", lambda pid: argv)
    stack.up_controller_manager()
    assert started == []  # already the right one
