"""helm's post-renderer for releases that run on the opt-in node: they tolerate its taint, where its images are.

The node is tainted (devstack/node/render.py TAINT), so the releases of the shared stack, installed
through helm-without-node, never land a pod there by accident. `helm-on-node`, which `up` writes beside
the pinned helm when the node runs, gives the console's release what a real cluster would not need:
- every workload whose images the node has tolerates the taint, and so runs;
- a Deployment with an image the node lacks (no registry is reachable here) is paused, which helm
  counts as ready, and a DaemonSet with one is left untolerating, so it wants no pod: `helm --wait`
  completes, and the workload is marked with the images it lacks;
- the notebook pods the hub spawns tolerate the taint too (z2jh's `singleuser.extraTolerations`, in
  the hub's Secret), and when the node lacks z2jh's network-tools image, they go without the
  iptables init container that blocks the cloud metadata server (there is none here).

Run as a script by helm, with one argument: JSON {"toleration": {...}, "images": [references]};
manifests on stdin, the edited ones on stdout. It imports nothing from devstack.
"""

import base64
import json
import re
import sys

import yaml

WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet", "Job")
MISSING_ANNOTATION = "devstack.binderadmin.local/missing-images"
SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def canonical(reference: str) -> str:
    """An image reference as containerd names it: `registry:2.8.1` is docker.io/library/registry:2.8.1."""
    first, _, rest = reference.partition("/")
    if not rest:
        return f"docker.io/library/{reference}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{reference}"
    return reference


def adapt(manifests: str, toleration: dict, images: set[str]) -> str:
    """The rendered manifests with the changes above; documents left alone are passed byte for byte."""
    present = {canonical(image) for image in images}
    return "---".join(_adapted(document, toleration, present) for document in SEPARATOR.split(manifests))


def _adapted(document: str, toleration: dict, present: set[str]) -> str:
    if not any(f"kind: {kind}" in document for kind in (*WORKLOADS, "Secret")):
        return document
    try:
        parsed = yaml.load(document, Loader)
    except yaml.YAMLError:
        return document  # helm reports it better than we could
    if not isinstance(parsed, dict):
        return document
    if parsed.get("kind") in WORKLOADS:
        changed = _workload(parsed, toleration, present)
    elif parsed.get("kind") == "Secret":
        changed = _hub_values(parsed, toleration, present)
    else:
        changed = False
    if not changed:
        return document
    comments = "".join(line + "\n" for line in document.strip("\n").splitlines() if line.startswith("#"))
    return "\n" + comments + json.dumps(parsed, default=str) + "\n"


def _workload(workload: dict, toleration: dict, present: set[str]) -> bool:
    pod = workload.get("spec", {}).get("template", {}).get("spec", {})
    containers = [*pod.get("initContainers", []), *pod.get("containers", [])]
    missing = sorted({c["image"] for c in containers if canonical(str(c.get("image", ""))) not in present})
    if missing:
        workload.setdefault("metadata", {}).setdefault("annotations", {})[MISSING_ANNOTATION] = " ".join(missing)
        if workload["kind"] == "Deployment":
            workload["spec"]["paused"] = True
        return True
    pod.setdefault("tolerations", []).append(toleration)
    return True


def _hub_values(secret: dict, toleration: dict, present: set[str]) -> bool:
    """z2jh's hub reads its values from the Secret `hub` (key values.yaml): the notebooks' settings live there."""
    data = secret.get("data") or {}
    if secret.get("metadata", {}).get("name") != "hub" or "values.yaml" not in data:
        return False
    values = yaml.load(base64.b64decode(data["values.yaml"]), Loader) or {}
    singleuser = values.setdefault("singleuser", {})
    singleuser["extraTolerations"] = [*(singleuser.get("extraTolerations") or []), toleration]
    tools = singleuser.get("networkTools", {}).get("image", {})
    if tools and canonical(f"{tools.get('name')}:{tools.get('tag')}") not in present:
        singleuser.setdefault("cloudMetadata", {})["blockWithIptables"] = False
    data["values.yaml"] = base64.b64encode(yaml.safe_dump(values).encode()).decode()
    return True


def main(argv: list[str]) -> int:
    settings = json.loads(argv[0])
    sys.stdout.write(adapt(sys.stdin.read(), settings["toleration"], set(settings["images"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
