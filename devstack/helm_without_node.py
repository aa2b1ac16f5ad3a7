"""The local stack's stand-in for a node: a helm wrapper whose installs pause Deployments, which no pod can serve.

The local stack has no kubelet, so no pod ever runs, and `helm upgrade --install --atomic` (which
implies --wait) would wait until its timeout for Deployments whose pods never become ready, then roll
the release back. helm counts a paused Deployment as ready (its ready checker is built with
PausedAsReady, https://github.com/helm/helm/blob/v3.19.0/pkg/kube/ready.go), as it must: a paused
Deployment starts no rollout to wait for. So `up` writes `helm-without-node` into the cache's bin
folder: on `install` and `upgrade` it runs the pinned helm with this file as a post-renderer
(https://helm.sh/docs/topics/advanced/#post-rendering), which sets `spec.paused: true` on every
Deployment; every other command goes to the pinned helm untouched. DaemonSets need no pausing:
kube-controller-manager's daemonset controller reports them complete on a cluster with no nodes.
The application chart has no StatefulSet; one would need the same treatment.

Only the local stack uses this. With the opt-in node it stays the tests' helm, so the shared stack's
releases land no pod there; the console's releases that should run go through helm-on-node.

Run as a script by helm (manifests on stdin, the paused ones on stdout), so it imports nothing from
devstack: helm starts it from wherever the console runs.
"""

import json
import os
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

WRAPPER_NAME = "helm-without-node"
PAUSED_KINDS = ("Deployment",)
# helm separates the rendered documents with a line of three dashes.
SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
TOP_LEVEL_SPEC = re.compile(r"^spec:[ \t]*(#.*)?$", re.MULTILINE)
# helm waits for this script on every install: libyaml's parser when PyYAML has it.
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def wrapper_path(bin_dir: Path) -> Path:
    return bin_dir / WRAPPER_NAME


# What helm-without-node's script says of itself.
COMMENT = """\
# The local stack has no node, so no pod runs and `helm --wait` would never see a Deployment ready.
# install and upgrade pause every Deployment (helm counts a paused one as ready); anything else is
# plain helm. With the node, helm-on-node (devstack/node/helm_on_node.py) is the console's helm instead.
"""


@dataclass(frozen=True)
class Wrapper:
    """A helm wrapper: its file name, the post-renderer script its install and upgrade add, and what it says."""

    name: str = WRAPPER_NAME
    post_renderer: Path = Path(__file__).resolve()
    renderer_args: tuple[str, ...] = ()
    comment: str = COMMENT


def wrapper_script(helm: Path, python: Path, wrapper: Wrapper = Wrapper()) -> str:
    """The shell script that adds the wrapper's post-renderer to helm's install and upgrade."""
    real, renderer = shlex.quote(str(helm)), shlex.quote(str(python))
    args = (str(wrapper.post_renderer), *wrapper.renderer_args)
    flags = " ".join(f"--post-renderer-args {shlex.quote(arg)}" for arg in args)
    return f"""#!/bin/sh
# {wrapper.name}, written by `python -m devstack up`: do not edit.
{wrapper.comment}case "$1" in
    install|upgrade) exec {real} "$@" --post-renderer {renderer} {flags} ;;
esac
exec {real} "$@"
"""


def write_wrapper(bin_dir: Path, helm: Path, python: Path | None = None, wrapper: Wrapper = Wrapper()) -> Path:
    """Write the wrapper (only when it changed) and return its path.

    It is replaced by a rename, so a helm started meanwhile by a test or the console never runs half a file.
    """
    path = bin_dir / wrapper.name
    text = wrapper_script(helm, python or Path(sys.executable), wrapper)
    try:
        if path.read_text() == text and os.access(path, os.X_OK):
            return path
    except OSError:
        pass
    bin_dir.mkdir(parents=True, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(prefix=f".{wrapper.name}-", dir=bin_dir)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(text)
        os.chmod(partial, 0o755)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return path


def pause_deployments(manifests: str) -> str:
    """The rendered manifests with `spec.paused: true` on every Deployment; other documents byte for byte."""
    return "---".join(_paused(document) for document in SEPARATOR.split(manifests))


def _paused(document: str) -> str:
    if not any(kind in document for kind in PAUSED_KINDS):
        return document  # most documents: not worth parsing
    try:
        parsed = yaml.load(document, Loader)
    except yaml.YAMLError:
        return document  # helm reports it better than we could
    if not (isinstance(parsed, dict) and parsed.get("kind") in PAUSED_KINDS and isinstance(parsed.get("spec"), dict)):
        return document
    if parsed["spec"].get("paused") is True:
        return document
    parsed["spec"]["paused"] = True
    # One line under the top-level `spec:` keeps the document as helm rendered it, readable in
    # `helm get manifest`. Where that does not give the same object (flow style, an existing
    # `paused: false`), the document becomes JSON, which is YAML and leaves no scalar's type to guess.
    edited = document
    found = TOP_LEVEL_SPEC.search(document)
    if found:
        following = re.search(r"^([ \t]+)\S", document[found.end() :], re.MULTILINE)
        indent = following.group(1) if following else "  "
        edited = f"{document[: found.end()]}\n{indent}paused: true{document[found.end() :]}"
    try:
        if yaml.load(edited, Loader) == parsed:
            return edited
    except yaml.YAMLError:
        pass
    comments = "".join(line + "\n" for line in document.strip("\n").splitlines() if line.startswith("#"))
    return "\n" + comments + json.dumps(parsed, default=str) + "\n"


def main() -> int:
    sys.stdout.write(pause_deployments(sys.stdin.read()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
