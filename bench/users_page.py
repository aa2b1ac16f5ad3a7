"""Benchmark: a platform's Users page and the user search with 5,000 users in the realm.

Run with the local stack up:  .venv/bin/python bench/users_page.py [--users 5000] [--rounds 50]
It uses its own SQLite database, imports the users into the local Keycloak in one go through the
realm's partialImport (a unique prefix; 1,000 of them in the platform's group and 200 in each
service subgroup), then times, through Django's test client signed in as an admin:
  - GET of the Users page (members of five groups, the combined view, the audit log);
  - the htmx search: a narrow term (about 10 matches), a broad one (every bench user, first page),
    the same broad one at page 200, and a first name ("Bench 1234");
and prints p50/p95 of each, with the Keycloak admin API calls per request. It removes the users,
the platform's groups and its client at the end.
"""

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORK = Path(tempfile.mkdtemp(prefix="binderadmin-bench-"))
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n"


def setup_django() -> None:
    from devstack import stack

    os.environ.update(stack.console_env())
    os.environ["DATABASE_URL"] = f"sqlite:///{WORK / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "binderadmin.settings"
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,127.0.0.1"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


@contextlib.contextmanager
def counting_admin_calls():
    """Count HTTP requests to Keycloak's admin API made inside the block."""
    import requests

    seen: list[str] = []
    original = requests.Session.send

    def send(self, request, **kwargs):
        if "/admin/realms/" in request.url:
            seen.append(request.url)
        return original(self, request, **kwargs)

    with mock.patch.object(requests.Session, "send", send):
        yield seen


def timed(rounds: int, request) -> tuple[list[float], int]:
    """Milliseconds of each round, and the admin API calls of the last one."""
    request()  # warm: the directory's token, Django's template cache
    times = []
    calls = 0
    for _ in range(rounds):
        with counting_admin_calls() as seen:
            started = time.perf_counter()
            response = request()
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        calls = len(seen)
    return times, calls


def report(label: str, times: list[float], calls: int) -> None:
    p50 = statistics.median(times)
    p95 = statistics.quantiles(times, n=20, method="inclusive")[18]
    print(f"{label:<44} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   admin API calls/request {calls}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    setup_django()

    from django.contrib.auth.models import Group, User
    from django.test import Client
    from django.urls import reverse

    from platforms import deploy, provisioning
    from platforms.models import Cluster, Platform
    from tests.integration import keycloak_admin

    prefix = f"bench{uuid.uuid4().hex[:5]}"
    admin = User.objects.create_user("bench-admin", is_staff=True)
    admin.groups.add(Group.objects.get_or_create(name="/admins")[0])
    cluster = Cluster(name="bench", server_version="v1.34.4")
    cluster.kubeconfig = KUBECONFIG
    cluster.save()
    platform = Platform.objects.create(name=prefix, cluster=cluster, app_version="0.1.0", status="deployed")
    provisioning.ensure_platform_access(deploy.values_input(platform))
    group = f"/platforms/{platform.name}"
    ids: list[str] = []
    try:
        started = time.perf_counter()
        ids += keycloak_admin.import_users(f"{prefix}-a", 1000, [group])
        ids += keycloak_admin.import_users(f"{prefix}-b", 200, [f"{group}/binderhub"])
        ids += keycloak_admin.import_users(f"{prefix}-j", 200, [f"{group}/jupyterhub"])
        ids += keycloak_admin.import_users(f"{prefix}-z", args.users - 1400)
        print(f"{len(ids)} users imported into Keycloak in {time.perf_counter() - started:.1f} s (prefix {prefix})")

        client = Client()
        client.force_login(admin)
        page = reverse("platform_users", args=[platform.name])
        search = reverse("platform_users_search", args=[platform.name])
        htmx = {"HX-Request": "true"}
        cases = [
            ("Users page (1,400 members in 3 groups)", lambda: client.get(page)),
            ("search, narrow (~10 matches)", lambda: client.get(search, {"q": f"{prefix}-z-0012"}, headers=htmx)),
            ("search, broad (5,000 matches), page 1", lambda: client.get(search, {"q": prefix}, headers=htmx)),
            (
                "search, broad, page 200",
                lambda: client.get(search, {"q": prefix, "first": 3980}, headers=htmx),
            ),
            ("search, first name words (Bench 1234)", lambda: client.get(search, {"q": "Bench 1234"}, headers=htmx)),
        ]
        print(f"{args.rounds} rounds each, Django test client in one process, Keycloak {keycloak_admin.ADMIN_API}")
        for label, request in cases:
            report(label, *timed(args.rounds, request))
    finally:
        started = time.perf_counter()
        keycloak_admin.delete_users(ids)
        provisioning.remove_platform_access(platform.name)
        print(f"cleaned up {len(ids)} users, the groups and the client in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
