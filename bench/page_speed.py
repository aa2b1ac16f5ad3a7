"""Benchmark: the platform list (1,000 platforms) and a platform page under 20 concurrent clients.

Run:  .venv/bin/python bench/page_speed.py [--clients 20] [--seconds 10] [--platforms 1000] [--rounds 3]
It fills its own SQLite database, serves the console with gunicorn (3 workers) on loopback,
signs a console admin in (a session cookie), and has wrk (or N Python client threads) fetch
each page for the given time, in several rounds (the machine's speed varies from minute to
minute). It prints p50/p95 latency and requests per second, and the worst p95.
Target on a 2-core machine: p95 under 100 ms for both pages.
"""

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORK = Path(tempfile.mkdtemp(prefix="binderadmin-pagespeed-"))
PORT = 18799


def prepare(platforms: int) -> str:
    """Create the database with `platforms` platforms; return an admin's session cookie."""
    os.environ["DATABASE_URL"] = f"sqlite:///{WORK / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "binderadmin.settings"
    os.environ["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,testserver"
    os.environ["DJANGO_DEBUG"] = "false"
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from platforms.models import Cluster, Operation, Platform, ServiceLink

    call_command("migrate", verbosity=0)
    admin = User.objects.create_user("bench-admin", is_staff=True)
    cluster = Cluster(name="local")
    cluster.kubeconfig = "apiVersion: v1\nkind: Config\n"
    cluster.save()
    Platform.objects.bulk_create(
        Platform(name=f"p{i:04d}", cluster=cluster, app_version="0.1.0", status="deployed", created_by=admin)
        for i in range(platforms)
    )
    ServiceLink.objects.bulk_create(
        ServiceLink(platform=p, name=name, url=f"https://{name}-{p.name}.example", ready=True)
        for p in Platform.objects.all()
        for name in ("binderhub", "jupyterhub")
    )
    first = Platform.objects.get(name="p0000")
    Operation.objects.bulk_create(
        Operation(platform=first, kind="upgrade", state="succeeded", actor=admin, output="Helm revision 2: deployed.")
        for _ in range(20)
    )
    client = Client()
    client.force_login(admin)
    return client.cookies["sessionid"].value


def serve(workers: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "binderadmin.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{PORT}",
         "--log-level", "warning"],
        cwd=REPO,
        env=os.environ.copy(),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", PORT, timeout=1).request("GET", "/signed-out/")
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


def load_with_wrk(path: str, cookie: str, clients: int, seconds: float) -> tuple[float, float, float, int]:
    """wrk (C, light on the CPU the server needs) with 2 threads; returns p50 ms, p95 ms, req/s, errors."""
    script = WORK / "wrk.lua"
    script.write_text(WRK_SCRIPT % cookie)
    result = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds:.0f}s", "-s", str(script), f"http://127.0.0.1:{PORT}{path}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(row for row in result.stdout.splitlines() if row.startswith("RESULT"))
    p50, p95, requests, duration_us, errors = line.split()[1:]
    return float(p50), float(p95), int(requests) / (int(duration_us) / 1e6), int(errors)


def load(path: str, cookie: str, clients: int, seconds: float) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--platforms", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--rounds", type=int, default=3, help="times each page is loaded; the worst p95 is printed")
    args = parser.parse_args()
    cookie = prepare(args.platforms)
    server = serve(args.workers)
    try:
        setup = f"{args.platforms} platforms, {args.clients} clients, {args.seconds:.0f} s a page"
        print(f"{setup}, gunicorn -w {args.workers}")
        use_wrk = shutil.which("wrk") is not None
        print("load generator:", "wrk -t2" if use_wrk else "Python threads (apt-get install wrk for a lighter one)")
        worst: dict[str, float] = {}
        for round_number in range(1, args.rounds + 1):
            for label, path in (("platform list", "/"), ("platform page", "/platforms/p0000/")):
                load(path, cookie, 2, 1)  # warm up
                if use_wrk:
                    p50, p95, rate, errors = load_with_wrk(path, cookie, args.clients, args.seconds)
                    extra = f"errors {errors}"
                else:
                    latencies, elapsed = load(path, cookie, args.clients, args.seconds)
                    quantiles = statistics.quantiles(latencies, n=100)
                    p50, p95, rate = quantiles[49] * 1000, quantiles[94] * 1000, len(latencies) / elapsed
                    extra = f"({len(latencies)} requests)"
                worst[label] = max(worst.get(label, 0.0), p95)
                print(
                    f"round {round_number}  {label:14} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   "
                    f"{rate:6.1f} req/s   {extra}"
                )
        print("worst p95 over the rounds: " + ", ".join(f"{label} {p95:.1f} ms" for label, p95 in worst.items()))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
