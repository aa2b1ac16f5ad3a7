"""Benchmark: the reconcile pass at 10 and at 1,000 platforms over 3 clusters, and the old way beside it.

Run:  .venv/bin/python bench/reconcile.py [--sizes 10,1000] [--passes 3] [--old-sample 100] [--remove]
Needs the local stack (`.venv/bin/python -m devstack up`). What is real: the kube-apiserver, Helm's
release records and the Reservations on it, the console's pass (platforms.reconcile.run_pass, as
the worker runs it, minus Keycloak's access check, which is paced on its own), and helm itself
for the old way. Each platform gets a namespace with a release record exactly as Helm stores it
(a Secret `sh.helm.release.v1.<name>.v1`, gzip+base64 JSON, `helm status` and `helm list` read it)
and the two Reservations of its services; seven in ten are Deployed, three in ten wait for Zenith.
What is simulated: the 3 clusters are 3 registered clusters (own kubeconfig contexts) on the one
local API server, so each cluster's listing returns every platform's records, three times what 3
real clusters would each return. Objects are made in namespaces `rbench-<n>` and kept for the next
run (making and deleting 1,000 namespaces loads the shared API server for minutes); --remove deletes
them at the end. Each listing also returns whatever else is on the stack.

It prints, for each size, the pass time (median and worst of --passes) and the API requests per
cluster in a pass, counted at the HTTP layer; then the old way (one `helm status` per Deployed
platform, one Reservation listing per waiting platform): measured at the smallest size, and over
--old-sample platforms at the largest, extrapolated. Targets: a pass under 5 s, at most 3 requests
per cluster, the same requests at 10 and at 1,000.
"""

import argparse
import base64
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORK = Path(tempfile.mkdtemp(prefix="binderadmin-reconcile-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "binderadmin.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{WORK / 'bench.sqlite3'}"
CLUSTERS = ("c0", "c1", "c2")


def kubeconfig_for(text: str, context: str) -> str:
    """The local stack's kubeconfig with its one context renamed, so each 'cluster' is told apart."""
    import yaml

    document = yaml.safe_load(text)
    document["contexts"][0]["name"] = context
    document["current-context"] = context
    return yaml.safe_dump(document)


def release_record(name: str) -> dict:
    """A release record as Helm 3 writes it (storage driver "secret"): gzip'd JSON, base64 twice over."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    release = {
        "name": name,
        "namespace": name,
        "version": 1,
        "info": {"first_deployed": now, "last_deployed": now, "deleted": "", "description": "Install complete",
                 "status": "deployed"},
        "chart": {"metadata": {"name": "binderhub-platform", "version": "0.1.0", "apiVersion": "v2"},
                  "templates": [], "values": {}},
        "config": {},
        "manifest": "",
    }  # fmt: skip
    encoded = base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()
    return {
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v1",
            "labels": {"name": name, "owner": "helm", "status": "deployed", "version": "1"},
        },
        "type": "helm.sh/release.v1",
        "data": {"release": base64.b64encode(encoded.encode()).decode()},
    }


def reservation(service: str, ready: bool, namespace: str) -> tuple[dict, dict | None]:
    body = {
        "apiVersion": "zenith.stackhpc.com/v1alpha1",
        "kind": "Reservation",
        "metadata": {"name": service, "labels": {"binderadmin.io/service": service}},
        "spec": {"credentialSecretName": f"{service}-credential"},
    }
    status = {"status": {"phase": "Ready", "fqdn": f"{service}-{namespace}.zenith.localhost"}} if ready else None
    return body, status


def make_on_cluster(api, names: list[str]) -> None:
    """Each platform's namespace, release record and Reservations (Ready unless it waits)."""
    from kubernetes import client

    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)

    def make(name: str) -> None:
        existing(core.create_namespace, {"metadata": {"name": name}})
        existing(core.create_namespaced_secret, name, release_record(name))
        for service in ("binderhub", "jupyterhub"):
            body, status = reservation(service, not waits(name), name)
            existing(
                custom.create_namespaced_custom_object, "zenith.stackhpc.com", "v1alpha1", name, "reservations", body
            )
            if status:
                custom.patch_namespaced_custom_object_status(
                    "zenith.stackhpc.com", "v1alpha1", name, "reservations", service, status
                )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make, names))


def existing(create, *args) -> None:
    """Create the object unless it is there from an earlier run."""
    from kubernetes import client

    try:
        create(*args)
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def remove_from_cluster(api, names: list[str]) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api)

    def remove(name: str) -> None:
        try:
            core.delete_namespace(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(remove, names))


def name_of(index: int) -> str:
    return f"rbench-{index}"


def waits(name: str) -> bool:
    """Three platforms in ten wait for Zenith (Installing; at 10, one on each cluster); the others are Deployed."""
    return int(name.rsplit("-", 1)[1]) % 10 < 3


def count_requests(counter: Counter):
    """Count the HTTP requests each cluster's client sends (by its kubeconfig context)."""
    from platforms.services import kube

    original = kube.KubeService.api_client

    def counted(self, access):
        api = original(self, access)
        send = api.rest_client.request

        def request(*args, **kwargs):
            counter[access.context] += 1
            return send(*args, **kwargs)

        api.rest_client.request = request
        return api

    kube.KubeService.api_client = counted


def timed_passes(passes: int, counter: Counter) -> tuple[list[float], dict[str, int]]:
    from platforms import reconcile

    times, most = [], Counter()
    for _ in range(passes):
        counter.clear()
        started = time.perf_counter()
        assert reconcile.run_pass(lambda operation_id: None, lambda platform: None)
        times.append(time.perf_counter() - started)
        for context, calls in counter.items():
            most[context] = max(most[context], calls)
    return times, {name: most[name] for name in CLUSTERS}


def old_way(platforms) -> float:
    """The pass as it was: a `helm status` per Deployed platform, a Reservation listing per waiting one."""
    from platforms import deploy
    from platforms.services import helm

    started = time.perf_counter()
    for platform in platforms:
        if platform.status == "deployed":
            assert helm.get_helm().release(platform.name, platform.cluster.access()) is not None
        else:
            deploy.sync_links(platform.pk)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--old-sample", type=int, default=100)
    parser.add_argument("--remove", action="store_true", help="delete the namespaces from the local stack")
    options = parser.parse_args()
    sizes = sorted(int(size) for size in options.sizes.split(","))

    from devstack import config, stack

    environment = stack.up()
    os.environ["HELM_EXECUTABLE"] = environment["HELM_EXECUTABLE"]
    import django

    django.setup()
    import yaml
    from django.core.management import call_command
    from kubernetes import config as kube_config

    from platforms.models import Cluster, Platform

    call_command("migrate", verbosity=0)
    text = config.KUBECONFIG.read_text()
    api = kube_config.new_client_from_config_dict(yaml.safe_load(text))
    clusters = []
    for name in CLUSTERS:
        cluster = Cluster(name=name, context=name, exposure=Cluster.Exposure.ZENITH)
        cluster.kubeconfig = kubeconfig_for(text, name)
        cluster.save()
        clusters.append(cluster)
    counter: Counter = Counter()
    count_requests(counter)
    made = attempted = 0
    results = []
    try:
        for size in sizes:
            names = [name_of(index) for index in range(made, size)]
            started = time.perf_counter()
            attempted = size
            make_on_cluster(api, names)
            Platform.objects.bulk_create(
                Platform(
                    name=name,
                    cluster=clusters[index % len(clusters)],
                    app_version="0.1.0",
                    status="installing" if waits(name) else "deployed",
                )
                for index, name in enumerate(names, start=made)
            )
            made = size
            print(
                f"{size} platforms on the stack ({time.perf_counter() - started:.0f} s to make or find them)",
                flush=True,
            )
            times, calls = timed_passes(options.passes, counter)
            results.append((size, times, calls))
            print(
                f"  pass: median {statistics.median(times):.2f} s, worst {max(times):.2f} s; "
                f"API requests per cluster: {calls}",
                flush=True,
            )
            assert Platform.objects.filter(status="failed").count() == 0, "a pass failed a platform it should not"
        everything = list(Platform.objects.select_related("cluster").order_by("pk"))
        smallest = old_way(everything[: sizes[0]])
        sample = everything[: min(options.old_sample, len(everything))]
        per_platform = old_way(sample) / len(sample)
        print(f"old way at {sizes[0]}: {smallest:.2f} s (measured)")
        print(
            f"old way at {sizes[-1]}: {per_platform * sizes[-1]:.1f} s "
            f"({per_platform * 1000:.0f} ms a platform, measured over {len(sample)})"
        )
        worst = max(max(times) for _, times, _ in results)
        most = max(max(calls.values()) for _, _, calls in results)
        same = len({tuple(calls.values()) for _, _, calls in results}) == 1
        print(
            f"worst pass {worst:.2f} s (target < 5), most requests per cluster {most} (target <= 3), "
            f"same requests at every size: {same}"
        )
    finally:
        if options.remove:
            remove_from_cluster(api, [name_of(index) for index in range(attempted)])


if __name__ == "__main__":
    main()
