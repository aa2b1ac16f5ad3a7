"""The opt-in node's parts that need no node: hostPath volumes, helm-on-node's post-renderer, the relay, the env."""

import asyncio
import base64
import json
import os
import shlex
import stat
from pathlib import Path
from types import SimpleNamespace

import yaml
from kubernetes import client

from devstack import config, node, stack, volumes
from devstack.node import helm_on_node, relay

UID = "0a52de51-8f39-40ce-a0c8-01d068e53c68"


def claim(phase="Pending", volume_name=None, annotations=None, uid=UID):
    return client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="registry", namespace="p1", uid=uid, annotations=annotations),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "20Gi"}),
            volume_name=volume_name,
        ),
        status=client.V1PersistentVolumeClaimStatus(phase=phase),
    )


class FakeCoreApi:
    def __init__(self, claims, volumes_there=()):
        self.claims = claims
        self.volumes = list(volumes_there)
        self.calls = []

    def list_persistent_volume_claim_for_all_namespaces(self):
        return SimpleNamespace(items=self.claims)

    def list_persistent_volume(self, label_selector):
        self.calls.append(("list volumes", label_selector))
        return SimpleNamespace(items=[SimpleNamespace(metadata=SimpleNamespace(name=n)) for n in self.volumes])

    def create_persistent_volume(self, body):
        self.calls.append(("create volume", body))

    def patch_persistent_volume_status(self, name, body):
        self.calls.append(("volume status", name, body))

    def delete_persistent_volume(self, name):
        self.calls.append(("delete volume", name))

    def patch_namespaced_persistent_volume_claim(self, name, namespace, body):
        self.calls.append(("claim", name, body))

    def patch_namespaced_persistent_volume_claim_status(self, name, namespace, body):
        self.calls.append(("claim status", name, body))


def test_with_the_node_a_pending_claim_gets_a_writable_folder_and_a_volume_bound_to_it(tmp_path):
    api = FakeCoreApi([claim(), claim(phase="Bound", volume_name="theirs", uid="1" * 36)])
    [line] = volumes.reconcile(api, volumes_dir=tmp_path)
    name = f"devstack-{UID}"
    assert line == f"provisioned p1/registry at {tmp_path / name}"
    assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o777
    [created] = [call[1] for call in api.calls if call[0] == "create volume"]
    assert created["metadata"] == {"name": name, "labels": {volumes.VOLUME_LABEL: "hostpath"}}
    assert created["spec"]["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "p1",
        "name": "registry",
        "uid": UID,
    }
    assert created["spec"]["capacity"] == {"storage": "20Gi"}
    assert created["spec"]["hostPath"] == {"path": str(tmp_path / name), "type": "Directory"}
    assert created["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    bind = {"metadata": {"annotations": {volumes.BIND_COMPLETED: "yes"}}, "spec": {"volumeName": name}}
    assert ("claim", "registry", bind) in api.calls
    assert api.calls[-1][:2] == ("list volumes", volumes.VOLUME_LABEL)


def test_with_the_node_a_fully_bound_claim_is_left_alone_and_a_gone_one_loses_volume_and_folder(tmp_path):
    name = f"devstack-{UID}"
    done = claim(phase="Bound", volume_name=name, annotations={volumes.BIND_COMPLETED: "yes"})
    gone = "devstack-" + "2" * 36
    (tmp_path / gone).mkdir()
    (tmp_path / gone / "file").write_text("x")
    api = FakeCoreApi([done], volumes_there=[name, gone])
    assert volumes.reconcile(api, volumes_dir=tmp_path) == [f"removed volume {gone}"]
    assert not (tmp_path / gone).exists()
    assert ("volume status", gone, {"status": {"phase": "Released"}}) in api.calls
    assert ("delete volume", gone) in api.calls


def test_a_name_the_binder_did_not_make_is_never_removed(tmp_path):
    for name in ("../etc", "devstack-../../x", "pvc-123"):
        try:
            volumes.remove_volume(FakeCoreApi([]), name, tmp_path)
        except ValueError:
            continue
        raise AssertionError(f"{name} was removed")


TOLERATION = {"key": "devstack.binderadmin.local/node", "value": "opt-in", "effect": "NoSchedule", "operator": "Equal"}


def workload(kind, name, image):
    template = {"spec": {"containers": [{"name": "c", "image": image}]}}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": {"template": template}}


def hub_secret(values):
    data = {"values.yaml": base64.b64encode(yaml.safe_dump(values).encode()).decode()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hub"}, "data": data}


def test_helm_on_node_runs_what_the_node_has_images_for_and_holds_back_the_rest():
    documents = [
        workload("Deployment", "registry", "registry:2.8.1"),
        workload("Deployment", "binder", "quay.io/jupyterhub/k8s-binderhub:1.0"),
        workload("DaemonSet", "cleaner", "quay.io/jupyterhub/docker-image-cleaner:1"),
        hub_secret(
            {
                "singleuser": {
                    "networkTools": {"image": {"name": "quay.io/jupyterhub/k8s-network-tools", "tag": "4.2.0"}}
                }
            }
        ),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
    ]
    rendered = "".join(f"---\n# Source: c/t{i}.yaml\n{yaml.safe_dump(d)}" for i, d in enumerate(documents))
    adapted = helm_on_node.adapt(rendered, TOLERATION, {"docker.io/library/registry:2.8.1"})
    by_name = {d["metadata"]["name"]: d for d in yaml.safe_load_all(adapted) if d}
    assert by_name["registry"]["spec"]["template"]["spec"]["tolerations"] == [TOLERATION]
    assert "paused" not in by_name["registry"]["spec"]
    assert by_name["binder"]["spec"]["paused"] is True
    assert "tolerations" not in by_name["binder"]["spec"]["template"]["spec"]
    assert by_name["binder"]["metadata"]["annotations"] == {
        helm_on_node.MISSING_ANNOTATION: "quay.io/jupyterhub/k8s-binderhub:1.0"
    }
    assert "tolerations" not in by_name["cleaner"]["spec"]["template"]["spec"]  # wants no pod on the node
    values = yaml.safe_load(base64.b64decode(by_name["hub"]["data"]["values.yaml"]))
    assert values["singleuser"]["extraTolerations"] == [TOLERATION]
    assert values["singleuser"]["cloudMetadata"] == {"blockWithIptables": False}
    assert "---\n# Source: c/t4.yaml\n" + yaml.safe_dump(documents[4]) in adapted  # untouched, byte for byte
    assert "# Source: c/t1.yaml" in adapted


def test_image_references_are_compared_as_containerd_names_them():
    assert helm_on_node.canonical("registry:2.8.1") == "docker.io/library/registry:2.8.1"
    assert helm_on_node.canonical("jupyter/base:1") == "docker.io/jupyter/base:1"
    assert helm_on_node.canonical("quay.io/a/b:1") == "quay.io/a/b:1"
    assert helm_on_node.canonical("localhost:30500/p/x:1") == "localhost:30500/p/x:1"


def test_the_relay_copies_a_connection_from_its_address_to_loopback():
    async def scenario():
        async def echo(reader, writer):
            writer.write(b"got " + await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, config.HOST, 0)
        port = server.sockets[0].getsockname()[1]
        relaying = asyncio.create_task(relay.serve("127.0.0.2", [port]))
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.2", port)
        writer.write(b"hello\n")
        await writer.drain()
        answer = await reader.read()
        relaying.cancel()
        server.close()
        return answer

    assert asyncio.run(scenario()) == b"got hello\n"


def test_with_the_node_the_tests_keep_their_helm_and_get_the_node_one_beside_it():
    environment = stack.console_env(with_node=True)
    assert environment["HELM_EXECUTABLE"] == str(config.BIN_DIR / "helm-without-node")
    assert environment["NODE_HELM_EXECUTABLE"] == str(config.BIN_DIR / "helm-on-node")
    assert environment["KEYCLOAK_URL_FROM_CLUSTERS"] == f"http://{node.GATEWAY}:{config.PORTS.keycloak}"
    assert "NODE_HELM_EXECUTABLE" not in stack.console_env(with_node=False)
    assert stack.volume_binder_args(True)[-1] == f"--volumes-dir={node.LAYOUT.volumes_dir}"
    assert not any(arg.startswith("--volumes-dir") for arg in stack.volume_binder_args(False))


def test_helm_on_node_is_given_the_nodes_images_and_taint(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "BIN_DIR", tmp_path)
    monkeypatch.setattr(node.tools, "helm", lambda: tmp_path / "helm")
    wrapper = node.write_helm_wrapper()
    assert wrapper == tmp_path / "helm-on-node" and os.access(wrapper, os.X_OK)
    [install] = [line for line in wrapper.read_text().splitlines() if line.strip().startswith("install|upgrade)")]
    words = shlex.split(install)
    renderer_args = [words[i + 1] for i, word in enumerate(words) if word == "--post-renderer-args"]
    assert renderer_args[0] == str(Path(helm_on_node.__file__).resolve())
    settings = json.loads(renderer_args[1])
    assert settings["toleration"] == TOLERATION
    assert "quay.io/jupyterhub/k8s-hub:4.2.0" in settings["images"]


def test_make_runs_console_gets_the_node_helm_when_the_node_runs(monkeypatch, capsys):
    from devstack.__main__ import main

    monkeypatch.setattr(stack.node, "running", lambda: ["kubelet"])
    assert main(["env"]) == 0
    printed = capsys.readouterr().out
    assert f"export HELM_EXECUTABLE='{config.BIN_DIR / 'helm-on-node'}'" in printed
    monkeypatch.setattr(stack.node, "running", lambda: [])
    assert main(["env"]) == 0
    assert f"export HELM_EXECUTABLE='{config.BIN_DIR / 'helm-without-node'}'" in capsys.readouterr().out
