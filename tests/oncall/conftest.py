"""A tiny real HTTP server on 127.0.0.1 serving one calendar, which a test can change or break."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class CalendarServer:
    """`body` is served with `status` at `url`; `requests` counts the GETs."""

    url: str = ""
    body: bytes = b""
    status: int = 200
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def calendar_server() -> Iterator[CalendarServer]:
    served = CalendarServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with served._lock:
                served.requests += 1
                status, body = served.status, served.body
            self.send_response(status)
            self.send_header("Content-Type", "text/calendar")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}/private/s3cr3t-token/sre.ics"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
