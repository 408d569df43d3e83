"""The full configuration's dependencies for `webhook_storm.py --full`, in a process of their own:
the Slack-Web-API-compatible server of the tests, and a Loki and a Prometheus that answer every
query on loopback with a few realistic lines and series (so the investigations the storm opens
do their real work: HTTP queries, evidence, the offline RCA, the card and the RCA reply).

Prints one JSON line `{"slack": URL, "loki": URL, "prometheus": URL}` and serves until stdin
closes (the bench's pipe), so it never outlives the bench.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ is not installed

from tests.fakes.slack_api import FakeSlackApi

LOG_LINES = [
    'level=info msg="deploy finished" version=2.4.1',
    'level=error msg="upstream payment gateway timeout" after=5s',
    'level=error msg="upstream payment gateway timeout" after=5s',
    'level=warn msg="retrying request" attempt=2',
]


async def loki_query(request: web.Request) -> web.Response:
    end_ns = int(request.query.get("end") or time.time_ns())
    values = [[str(end_ns - i * 1_000_000_000), line] for i, line in enumerate(LOG_LINES)]
    body = {
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": [{"stream": {"service": "checkout"}, "values": values}],
        },
    }
    return web.json_response(body)


async def prometheus_range(request: web.Request) -> web.Response:
    params = request.query if request.method == "GET" else await request.post()
    start, end = float(params["start"]), float(params["end"])
    step = max(float(params.get("step") or 15), (end - start) / 200)
    points, moment = [], start
    while moment <= end:
        jump = 10.0 if moment > (start + end) / 2 else 1.0
        points.append([moment, str(jump)])
        moment += step
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {"__name__": "errors", "service": "checkout"}, "values": points}],
        },
    }
    return web.json_response(body)


async def prometheus_instant(request: web.Request) -> web.Response:
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {"service": "checkout"}, "value": [time.time(), "10"]}],
        },
    }
    return web.json_response(body)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def main() -> None:
    loki = web.Application()
    loki.router.add_get("/loki/api/v1/query_range", loki_query)
    prometheus = web.Application()
    for method in ("GET", "POST"):
        prometheus.router.add_route(method, "/api/v1/query_range", prometheus_range)
        prometheus.router.add_route(method, "/api/v1/query", prometheus_instant)
    with FakeSlackApi(channels={"C0INCIDENTS"}) as slack:
        runners = [await serve(loki), await serve(prometheus)]
        urls = {"slack": slack.base_url, "loki": runners[0][1], "prometheus": runners[1][1]}
        print(json.dumps(urls), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
        for runner, _ in runners:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
