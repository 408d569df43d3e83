"""A pretend `checkout` service for the local stack: metrics to scrape, a log to read, and a
switch to break it.

    python exporter.py [--port 19100] [--log logs/checkout.log]

    GET  /metrics  checkout_requests_total{code}, checkout_payment_pool_in_use
    POST /break    "deploy" v2.4.1 (payment pool 50 -> 10), then a growing share of requests fail
    POST /fix      roll back: errors stop, the pool recovers
    GET  /state    "ok" or "broken"

It simulates about 40 requests a second. Every second it writes one log line per kind of thing
that happened (a request sample, and while broken the payment gateway timeouts), with an ISO
timestamp, so Firebreak's `file` log source reads it like any service log.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "checkout_requests", "Checkout HTTP requests by status code", ["code"], registry=REGISTRY
)
POOL = Gauge(
    "checkout_payment_pool_in_use", "Payment gateway connections in use", registry=REGISTRY
)


class Service:
    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.lock = threading.Lock()
        self.broken_since: float | None = None
        self.pool_size = 50
        log_path.parent.mkdir(parents=True, exist_ok=True)
        REQUESTS.labels(code="200")
        REQUESTS.labels(code="500")  # present from the start, so rate() has a "before"

    def log(self, level: str, message: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self.lock, self.log_path.open("a") as handle:
            handle.write(f"{stamp} {level:<5} checkout {message}\n")

    def break_(self) -> None:
        if self.broken_since is not None:
            return
        self.log("INFO", "deploy checkout v2.4.1 started by ci-bot (commit 9f3c2ab)")
        self.log("INFO", "deploy checkout v2.4.1 complete")
        self.pool_size = 10
        self.log("INFO", "payment gateway client ready: pool_size=10 host=payments.internal:8443")
        self.broken_since = time.monotonic()

    def fix(self) -> None:
        if self.broken_since is None:
            return
        self.log("INFO", "rollback checkout to v2.4.0 complete")
        self.pool_size = 50
        self.log("INFO", "payment gateway client ready: pool_size=50 host=payments.internal:8443")
        self.broken_since = None

    def tick(self) -> None:
        """One second of traffic."""
        total = random.randint(36, 44)
        failing = 0
        if self.broken_since is not None:
            share = min(0.4, 0.05 + (time.monotonic() - self.broken_since) / 40)
            failing = round(total * share)
        REQUESTS.labels(code="200").inc(total - failing)
        if failing:
            REQUESTS.labels(code="500").inc(failing)
            POOL.set(self.pool_size)
            self.log(
                "ERROR",
                f"payment gateway timeout after {5000 + random.randint(0, 30)}ms: connection pool "
                f"exhausted (active={self.pool_size}/{self.pool_size}, "
                f"waiting={failing + random.randint(0, 5)}) "
                f"order_id={random.randint(10**5, 10**6)}",
            )
        else:
            POOL.set(random.randint(3, 7))
        self.log(
            "INFO",
            f"request method=POST path=/api/checkout status=200 "
            f"duration_ms={random.randint(20, 90)} served={total - failing}",
        )

    def run(self) -> None:
        while True:
            started = time.monotonic()
            self.tick()
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


def handler(service: Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif self.path == "/state":
                self._send(200, b"broken\n" if service.broken_since else b"ok\n")
            else:
                self._send(404, b"not found\n")

        def do_POST(self) -> None:
            if self.path == "/break":
                service.break_()
                self._send(200, b"checkout is now failing; an alert fires in 10-15 s\n")
            elif self.path == "/fix":
                service.fix()
                self._send(200, b"checkout recovered; the alert resolves in about 30 s\n")
            else:
                self._send(404, b"not found\n")

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=19100)
    parser.add_argument("--log", default="logs/checkout.log")
    args = parser.parse_args()
    service = Service(Path(args.log))
    threading.Thread(target=service.run, daemon=True).start()
    server = ThreadingHTTPServer((args.host, args.port), handler(service))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
