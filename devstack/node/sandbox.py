"""The node's sandbox ("pause") image: a static Go program of ours in an OCI layout written by hand."""

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from devstack import config, tools


def oci_archive(binary: bytes, name: str, arch: str) -> bytes:
    """An OCI image layout as a tar, holding one layer with /pause, named `name` for `ctr images import`.

    https://github.com/opencontainers/image-spec/blob/main/image-layout.md
    """
    layer = _tar({"pause": (binary, 0o755)})
    diff_id = f"sha256:{hashlib.sha256(layer).hexdigest()}"
    layer_gz = gzip.compress(layer, mtime=0)
    image_config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535", "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_blob = json.dumps(image_config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _descriptor("application/vnd.oci.image.config.v1+json", config_blob),
        "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer_gz)],
    }
    manifest_blob = json.dumps(manifest, sort_keys=True).encode()
    tag = name.rsplit(":", 1)[1]
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                **_descriptor("application/vnd.oci.image.manifest.v1+json", manifest_blob),
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
                "platform": {"architecture": arch, "os": "linux"},
            }
        ],
    }
    files = {
        "oci-layout": (json.dumps({"imageLayoutVersion": "1.0.0"}).encode(), 0o644),
        "index.json": (json.dumps(index, sort_keys=True).encode(), 0o644),
    }
    for blob in (layer_gz, config_blob, manifest_blob):
        files[f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"] = (blob, 0o644)
    return _tar(files)


def _descriptor(media_type: str, blob: bytes) -> dict:
    return {"mediaType": media_type, "digest": f"sha256:{hashlib.sha256(blob).hexdigest()}", "size": len(blob)}


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    # Fixed owner and times, so the same binary always gives the same digests.
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def pause_binary() -> Path:
    """The static pause program (devstack/node/pause), built once into the cache."""
    source = config.DEVSTACK_DIR / "node" / "pause"
    digest = hashlib.sha256((source / "main.go").read_bytes()).hexdigest()[:12]
    target = config.BIN_DIR / f"pause-{digest}"
    if target.exists():
        return target
    config.BIN_DIR.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    go = tools.go_executable()
    argv = [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "."]
    tools._run_build(argv, "the pause program", cwd=source, env={"CGO_ENABLED": "0"})
    partial.rename(target)
    return target
