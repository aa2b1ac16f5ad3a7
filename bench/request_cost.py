"""Benchmark: the CPU time one request of the platform list and of a platform page costs, in-process.

Run:  .venv/bin/python bench/request_cost.py [--platforms 1000] [--batches 15]
It calls the console's WSGI application directly (no server, no network, no load generator) with
page_speed.py's data and session, and counts process CPU time over batches of 100 requests; it
prints the best and the median batch, in ms per request. The machine's own speed still varies from
minute to minute: to see what a change saves, run it before and after, one right after the other.
page_speed.py gives the figures under load.
"""

import argparse
import io
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import page_speed  # noqa: E402 - beside this file, not a package

PAGES = (("platform list", "/"), ("platform page", "/platforms/p0000/"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--platforms", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=15)
    args = parser.parse_args()
    os.environ.update(page_speed.SETTINGS, DATABASE_URL=page_speed.database_url(args.platforms))
    cookie = page_speed.prepare(args.platforms)
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

    print(f"{args.platforms} platforms, Python {sys.version.split()[0]}")
    for label, path in PAGES:
        for _ in range(30):  # warm up: templates compiled, connections open
            get(path)
        batches = []
        for _ in range(args.batches):
            started = time.process_time()
            for _ in range(100):
                get(path)
            batches.append((time.process_time() - started) * 10)  # ms per request
        print(f"{label:14} best {min(batches):5.2f} ms   median {statistics.median(batches):5.2f} ms CPU a request")


if __name__ == "__main__":
    main()
