"""Benchmark: the CPU time one request of the platform list and of a platform page costs, in-process.

Run:  [BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432] .venv/bin/python bench/request_cost.py
        [--sizes 10,1000] [--batches 24] [--children 3]
Each size (a number of platforms) gets page_speed.py's data and session in its own child processes
(several: one process can be a few percent faster or slower than another running the same code), each
of which calls the console's WSGI application directly (no server, no network, no load generator) and
counts its CPU time over batches of 100 requests. The parent asks the children for their batches in
turn, the order reversed every other time: the machine's speed drifts from minute to minute, and
comparing each batch with its neighbour at the other size keeps the drift out of the comparison. The
batches go to each size's children in turn.
It prints the best and the median batch of each page at each size, in ms a request, and for the
list the median over the batch pairs of its cost at the largest size over the smallest (page_speed.py
gives the same comparison under load; its target is 1.2x).
"""

import argparse
import io
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import page_speed  # noqa: E402 - beside this file, not a package

PAGES = (("platform list", "/"), ("platform page", "/platforms/p0000/"))
REQUESTS_A_BATCH = 100


def serve_batches(platforms: int) -> None:
    """The child: fill the database, then run a batch of one page's requests for each path read from stdin."""
    os.environ.update(page_speed.SETTINGS, DATABASE_URL=page_speed.database_url(platforms))
    cookie = page_speed.prepare(platforms)
    logging.disable(logging.WARNING)
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()

    def get(path: str) -> None:
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(page_speed.FIRST_PORT), "HTTP_HOST": "127.0.0.1", "HTTP_COOKIE": f"sessionid={cookie}",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
        }  # fmt: skip
        statuses: list[str] = []
        b"".join(application(environ, lambda status, headers, exc_info=None: statuses.append(status)))
        assert statuses[0].startswith("200"), (path, statuses[0])

    for _label, path in PAGES:
        for _ in range(30):  # warm up: templates compiled, connections open
            get(path)
    print("ready", flush=True)
    for line in sys.stdin:
        path = line.strip()
        started = time.process_time()
        for _ in range(REQUESTS_A_BATCH):
            get(path)
        print((time.process_time() - started) * 1000 / REQUESTS_A_BATCH, flush=True)  # ms a request
    page_speed.drop_database(platforms)


def start_child(platforms: int) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(platforms)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the child for {platforms} platforms did not start")
    return child


def batch(child: subprocess.Popen, path: str) -> float:
    child.stdin.write(path + "\n")
    child.stdin.flush()
    return float(child.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,1000", help="numbers of platforms, comma-separated")
    parser.add_argument("--batches", type=int, default=24, help="batches of each page at each size")
    parser.add_argument("--children", type=int, default=3, help="child processes for each size")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the child of one size
    args = parser.parse_args()
    if args.serve is not None:
        serve_batches(args.serve)
        return
    sizes = sorted(int(size) for size in args.sizes.split(","))
    children = {size: [start_child(size) for _ in range(args.children)] for size in sizes}
    try:
        print(f"{REQUESTS_A_BATCH} requests a batch, sizes {sizes}, {args.children} processes a size")
        for label, path in PAGES:
            costs: dict[int, list[float]] = {size: [] for size in sizes}
            for number in range(args.batches):
                for size in sizes if number % 2 else sizes[::-1]:
                    costs[size].append(batch(children[size][number % args.children], path))
            for size in sizes:
                best, median = min(costs[size]), statistics.median(costs[size])
                print(f"{label} at {size:<5} best {best:5.2f} ms   median {median:5.2f} ms CPU a request")
            if label == "platform list" and len(sizes) > 1:
                ratios = [large / small for small, large in zip(costs[sizes[0]], costs[sizes[-1]], strict=True)]
                print(f"platform list at {sizes[-1]} over at {sizes[0]}: median {statistics.median(ratios):.3f}x")
    finally:
        for child in (child for group in children.values() for child in group):
            child.stdin.close()
            child.wait(10)


if __name__ == "__main__":
    main()
