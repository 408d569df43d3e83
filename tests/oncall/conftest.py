"""A tiny real HTTP server on 127.0.0.1 serving one calendar, which a test can change or break."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support.http import Answer, Seen, serving


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

    def respond(_request: Seen) -> Answer:
        with served._lock:
            served.requests += 1
            return served.status, "text/calendar", served.body

    with serving(respond) as url:
        served.url = f"{url}/private/s3cr3t-token/sre.ics"
        yield served
