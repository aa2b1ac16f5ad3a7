"""Benchmark: the platform list and a platform page under 20 concurrent clients, at 10 and 1,000 platforms.

Run:  [BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432] .venv/bin/python bench/page_speed.py
        [--clients 20] [--seconds 10] [--sizes 10,1000] [--rounds 3]
For each size it fills its own SQLite database, or PostgreSQL database on the server given (in a child
process, so each has its own Django setup), serves the console from it with gunicorn (3 workers) on
loopback, and signs a console admin in (a session cookie). Then, in several rounds (the machine's
speed varies from minute to minute), wrk (or N Python client threads) fetches each page of each
size for the given time. It prints p50/p95 latency and requests per second, the worst p95, and the
list's p50 at the largest size over the smallest, each round's from lists measured back to back, and
their median. Targets on a 2-core machine: p95 under 100 ms for both pages; the list at 1,000
platforms within 1.2x of the list at 10.
"""

import argparse
import atexit
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORK = Path(tempfile.mkdtemp(prefix="binderadmin-pagespeed-"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
FIRST_PORT = 18799
SETTINGS = {
    "DJANGO_SETTINGS_MODULE": "binderadmin.settings",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,testserver",
    "DJANGO_DEBUG": "false",
}


# BENCH_POSTGRES=postgres://user@host:port benches on that PostgreSQL server, as the console runs in
# production, instead of SQLite files: each size's database is made for the run and dropped after it.
POSTGRES_SERVER = os.environ.get("BENCH_POSTGRES", "").rstrip("/")


def database_name(platforms: int) -> str:
    return f"bench_{WORK.name.rsplit('-', 1)[-1].lower()}_{platforms}"


def database_url(platforms: int) -> str:
    if POSTGRES_SERVER:
        return f"{POSTGRES_SERVER}/{database_name(platforms)}"
    return f"sqlite:///{WORK / f'bench-{platforms}.sqlite3'}"


def on_postgres_server(statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as connection:
        connection.execute(statement)


def drop_database(platforms: int) -> None:
    """Drop a size's PostgreSQL database and end its connections; SQLite files go with WORK."""
    if POSTGRES_SERVER:
        on_postgres_server(f'DROP DATABASE IF EXISTS "{database_name(platforms)}" WITH (FORCE)')


def prepare_in_child(platforms: int) -> str:
    """Fill the database of `platforms` platforms in a child process; return its admin's session cookie."""
    result = subprocess.run(
        [sys.executable, __file__, "--prepare", str(platforms)],
        env={**os.environ, **SETTINGS, "DATABASE_URL": database_url(platforms)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


def prepare(platforms: int) -> str:
    """Create the database with `platforms` platforms; return an admin's session cookie."""
    import django

    if POSTGRES_SERVER:  # the database the parent named in DATABASE_URL
        on_postgres_server(f'CREATE DATABASE "{os.environ["DATABASE_URL"].rsplit("/", 1)[1]}"')
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from platforms.models import Cluster, Operation, Platform, PlatformUsage, ServiceLink

    call_command("migrate", verbosity=0)
    admin = User.objects.create_user("bench-admin", is_staff=True)
    cluster = Cluster(name="local")
    cluster.kubeconfig = "apiVersion: v1\nkind: Config\n"
    cluster.save()
    now = timezone.now()
    # Half the platforms expire (the list's expiry column), a tenth of those within its warning's 7 days.
    Platform.objects.bulk_create(
        Platform(
            name=f"p{i:04d}",
            cluster=cluster,
            app_version="0.1.0",
            status="deployed",
            created_by=admin,
            expires_at=now + timedelta(days=1 + i % 60) if i % 2 else None,
        )
        for i in range(platforms)
    )
    ServiceLink.objects.bulk_create(
        ServiceLink(platform=p, name=name, url=f"https://{name}-{p.name}.example", ready=True)
        for p in Platform.objects.all()
        for name in ("binderhub", "jupyterhub")
    )
    # Every platform shows the worker's usage reading; one in ten an unreachable hub.
    PlatformUsage.objects.bulk_create(
        PlatformUsage(platform=p, active_users=i % 40, servers=i % 60, read_at=now, checked_at=now)
        if i % 10
        else PlatformUsage(platform=p, checked_at=now, error="hub not reachable: no answer within 5 s")
        for i, p in enumerate(Platform.objects.all())
    )
    first = Platform.objects.get(name="p0000")
    Operation.objects.bulk_create(
        Operation(platform=first, kind="upgrade", state="succeeded", actor=admin, output="Helm revision 2: deployed.")
        for _ in range(20)
    )
    client = Client()
    client.force_login(admin)
    assert "active users" in client.get("/", HTTP_HOST="127.0.0.1").content.decode()
    return client.cookies["sessionid"].value


def serve(workers: int, port: int, platforms: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "binderadmin.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning"],
        cwd=REPO,
        env={**os.environ, **SETTINGS, "DATABASE_URL": database_url(platforms)},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/signed-out/")
            return server
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


WRK_SCRIPT = """
wrk.headers["Cookie"] = "sessionid=%s"
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
                 + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %%f %%f %%d %%d %%d\\n", latency:percentile(50) / 1000,
           latency:percentile(95) / 1000, summary.requests, summary.duration, errors))
end
"""


def load_with_wrk(port: int, path: str, cookie: str, clients: int, seconds: float) -> tuple[float, float, float, int]:
    """wrk (C, light on the CPU the server needs) with 2 threads; returns p50 ms, p95 ms, req/s, errors."""
    script = WORK / "wrk.lua"
    script.write_text(WRK_SCRIPT % cookie)
    result = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds:.0f}s", "-s", str(script), f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(row for row in result.stdout.splitlines() if row.startswith("RESULT"))
    p50, p95, requests, duration_us, errors = line.split()[1:]
    return float(p50), float(p95), int(requests) / (int(duration_us) / 1e6), int(errors)


def load(port: int, path: str, cookie: str, clients: int, seconds: float) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            connection.request("GET", path, headers={"Cookie": f"sessionid={cookie}"})
            response = connection.getresponse()
            response.read()
            assert response.status == 200, (path, response.status)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.monotonic() - started


def measure(port: int, path: str, cookie: str, args: argparse.Namespace, use_wrk: bool) -> tuple[float, float, str]:
    """Load one page for the set time; return p50 and p95 in ms and the rest of its line."""
    load(port, path, cookie, 2, 1)  # warm up
    if use_wrk:
        p50, p95, rate, errors = load_with_wrk(port, path, cookie, args.clients, args.seconds)
        return p50, p95, f"{rate:6.1f} req/s   errors {errors}"
    latencies, elapsed = load(port, path, cookie, args.clients, args.seconds)
    quantiles = statistics.quantiles(latencies, n=100)
    rest = f"{len(latencies) / elapsed:6.1f} req/s   ({len(latencies)} requests)"
    return quantiles[49] * 1000, quantiles[94] * 1000, rest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--sizes", default="10,1000", help="numbers of platforms, comma-separated")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--rounds", type=int, default=3, help="times each page is loaded; the worst p95 is printed")
    parser.add_argument("--prepare", type=int, help=argparse.SUPPRESS)  # the child that fills one database
    args = parser.parse_args()
    if args.prepare is not None:
        print(prepare(args.prepare))
        return
    sizes = sorted(int(size) for size in args.sizes.split(","))
    cookies = {size: prepare_in_child(size) for size in sizes}
    ports = {size: FIRST_PORT + index for index, size in enumerate(sizes)}
    servers = [serve(args.workers, ports[size], size) for size in sizes]
    try:
        print(f"{args.clients} clients, {args.seconds:.0f} s a page, gunicorn -w {args.workers}, sizes {sizes}")
        use_wrk = shutil.which("wrk") is not None
        print("load generator:", "wrk -t2" if use_wrk else "Python threads (apt-get install wrk for a lighter one)")
        worst: dict[str, float] = {}
        ratios: list[float] = []
        pages = (("platform list", "/"), ("platform page", "/platforms/p0000/"))
        for round_number in range(1, args.rounds + 1):
            # Each page at every size back to back, the sizes' order reversed every other round: the
            # machine's speed drifts from minute to minute, and this keeps the drift out of the ratio.
            order = sizes if round_number % 2 else sizes[::-1]
            for label, path in pages:
                p50s = {}
                for size in order:
                    p50, p95, rest = measure(ports[size], path, cookies[size], args, use_wrk)
                    key = f"{label} at {size}"
                    worst[key] = max(worst.get(key, 0.0), p95)
                    p50s[size] = p50
                    print(f"round {round_number}  {key:22} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   {rest}")
                if label == "platform list" and len(sizes) > 1:
                    ratios.append(p50s[sizes[-1]] / p50s[sizes[0]])
        print("worst p95 over the rounds: " + ", ".join(f"{key} {p95:.1f} ms" for key, p95 in worst.items()))
        if ratios:
            print(
                f"platform list p50 at {sizes[-1]} over at {sizes[0]}, each round: "
                + ", ".join(f"{ratio:.2f}" for ratio in ratios)
                + f"; median {statistics.median(ratios):.2f}x (target <= 1.2x)"
            )
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
        for size in sizes:
            drop_database(size)


if __name__ == "__main__":
    main()
