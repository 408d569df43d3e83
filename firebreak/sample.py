"""The sample incident shipped in `examples/demo/`, made current, and a Prometheus to serve it.

`examples/demo/` holds one story, anchored to an alert that started at 2026-11-22T10:00:00Z:
`alert.json` (an Alertmanager v4 webhook payload), `checkout.log` (normal traffic, a deploy,
then a growing burst of one error signature) and `metrics.json` (the series Prometheus would
return for a few queries, as offsets in seconds from the alert start).

`materialise(workdir, now)` writes that story as if it were happening now: the alert started
`ALERT_AGE` before `now`, every log timestamp and every metric point moves by the same amount.
The shipped files are never modified.

`serve_sample_prometheus(series)` serves the materialised series over the parts of the
Prometheus HTTP API that Firebreak and `firebreak check` use (`/api/v1/query_range`,
`/api/v1/query`, `/-/ready`, `/api/v1/status/buildinfo`), on 127.0.0.1 with a free port. It
does not evaluate PromQL: a query is matched by its exact text; an unknown query gets an empty
result, exactly what Prometheus answers for a selector that matches nothing; malformed
parameters get Prometheus' 400 `bad_data` answer. So `tools/prometheus.py` runs unchanged
against it, and the demo needs no Prometheus binary.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = [
    "ALERT_AGE",
    "ANCHOR",
    "SAMPLE_DIR",
    "SampleSeries",
    "SampleStack",
    "load_series",
    "materialise",
    "serve_sample_prometheus",
    "shift_stamps",
]

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "demo"
ANCHOR = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # the shipped alert's startsAt
ALERT_AGE = timedelta(minutes=2)  # how long before `now` the materialised alert started
LOOKBACK_DELTA_S = 300.0  # Prometheus' default: a sample stays current for 5 minutes
MAX_POINTS = 11_000  # Prometheus refuses range queries with more points per series

_ISO_UTC = re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


@dataclass(frozen=True)
class SampleSeries:
    """One series: what Prometheus answers for `query`. `points` are (unix seconds, value)."""

    query: str
    metric: dict[str, str]
    points: list[tuple[float, float]]
    template: str | None = None  # the `sources.metrics[].queries` entry that renders to `query`
    name: str = ""


@dataclass
class SampleStack:
    """The materialised sample: everything a demo or a test points Firebreak at."""

    workdir: Path
    alert_start: datetime
    payload: dict[str, Any]  # the Alertmanager webhook body, startsAt shifted
    alert_path: Path  # the same payload, written as JSON
    log_path: Path
    series: list[SampleSeries]
    queries: list[str] = field(default_factory=list)  # templates for `sources.metrics[].queries`
    log_paths: list[Path] = field(default_factory=list)  # every log file (`log_path`: the first)
    shift: timedelta = timedelta(0)  # how far every time of the story moved

    def sources(self, prometheus_url: str) -> dict[str, Any]:
        """The `sources:` section that reads this sample: its log file, and its series from
        the Prometheus-compatible server at `prometheus_url`."""
        metrics = {"type": "prometheus", "name": "prometheus", "url": prometheus_url}
        return {
            "logs": [{"type": "file", "name": "checkout", "path": str(self.log_path)}],
            "metrics": [metrics | {"queries": self.queries}],
        }


def _iso(moment: datetime, timespec: str = "milliseconds") -> str:
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def load_series(path: Path | None = None) -> list[dict[str, Any]]:
    """The shipped series (`metrics.json`), points still as offsets from the alert start."""
    document = json.loads((path or SAMPLE_DIR / "metrics.json").read_text())
    return list(document["series"])


def shift_stamps(text: str, delta: timedelta) -> str:
    """`text` with every UTC timestamp in it (`2026-11-22T09:41:07Z`, with or without a
    fraction) moved by `delta`, each kept to its own precision: a line's leading time, and the
    times a message quotes (a certificate's expiry, a pod's last termination), so that the
    story still agrees with itself once it is made current."""

    def moved(match: re.Match[str]) -> str:
        stamp = match.group()
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + delta
        digits = len(stamp[:-1].partition(".")[2])
        return _iso(
            moment, {0: "seconds", 3: "milliseconds", 6: "microseconds"}.get(digits, "auto")
        )

    return _ISO_UTC.sub(moved, text)


def _shift_log(text: str, delta: timedelta) -> str:
    lines = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue  # the header comment explains the file; it is not part of the log
        lines.append(shift_stamps(line, delta))
    return "\n".join(lines) + "\n"


def _shift_payload(payload: dict[str, Any], delta: timedelta) -> dict[str, Any]:
    shifted = copy.deepcopy(payload)
    for alert in shifted.get("alerts", []):
        for key in ("startsAt", "endsAt"):
            value = alert.get(key)
            if value and not value.startswith("0001-"):
                moment = datetime.fromisoformat(value.replace("Z", "+00:00")) + delta
                alert[key] = _iso(moment, "auto")
    return shifted


def materialise(workdir: Path, now: datetime, *, source: Path | None = None) -> SampleStack:
    """Write the story in `source` (default: the shipped sample) under `workdir`, the alert
    starting `ALERT_AGE` before `now`. `source` holds `alert.json`, one or more `*.log` files
    and `metrics.json`, all anchored at the alert's `startsAt`."""
    source = source or SAMPLE_DIR
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    alert_start = (now - ALERT_AGE).astimezone(UTC).replace(microsecond=0)
    original = json.loads((source / "alert.json").read_text())
    delta = alert_start - _anchor(original)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    payload = _shift_payload(original, delta)
    alert_path = workdir / "alert.json"
    alert_path.write_text(json.dumps(payload, indent=2) + "\n")

    log_dir = workdir / "logs"
    log_dir.mkdir(exist_ok=True)
    log_paths = []
    for log in sorted(source.glob("*.log")):
        log_paths.append(log_dir / log.name)
        log_paths[-1].write_text(_shift_log(log.read_text(), delta))

    start = alert_start.timestamp()
    metrics = source / "metrics.json"
    series = [
        SampleSeries(
            query=entry["query"],
            metric={str(k): str(v) for k, v in (entry.get("metric") or {}).items()},
            points=[(start + offset, value) for offset, value in _points(entry)],
            template=entry.get("template"),
            name=entry.get("name", ""),
        )
        for entry in (load_series(metrics) if metrics.exists() else [])
    ]
    return SampleStack(
        workdir=workdir,
        alert_start=alert_start,
        payload=payload,
        alert_path=alert_path,
        log_path=log_paths[0] if log_paths else log_dir / "empty.log",
        series=series,
        queries=[s.template for s in series if s.template],
        log_paths=log_paths,
        shift=delta,
    )


def _anchor(payload: dict[str, Any]) -> datetime:
    """The earliest alert's `startsAt`: every time of the story is relative to it."""
    starts = [a["startsAt"] for a in payload.get("alerts", []) if a.get("startsAt")]
    if not starts:
        return ANCHOR
    return min(datetime.fromisoformat(value.replace("Z", "+00:00")) for value in starts)


def _points(entry: dict[str, Any]) -> list[tuple[float, float]]:
    """A series' points as (offset_s, value): given one by one (`points`), or as `steps`
    (`[[offset_s, value], ...]`: each value holds until the next step) sampled every `every`
    seconds (15) up to `until` (120 s after the alert), with a deterministic wobble of
    `noise` (a fraction of the value) so a change point stands out from a living baseline."""
    if "points" in entry:
        return [(float(offset), float(value)) for offset, value in entry["points"]]
    steps = sorted((float(offset), float(value)) for offset, value in entry["steps"])
    every, until = float(entry.get("every", 15)), float(entry.get("until", 120))
    noise = float(entry.get("noise", 0.0))
    points: list[tuple[float, float]] = []
    moment, index = steps[0][0], 0
    while moment <= until:
        while index + 1 < len(steps) and steps[index + 1][0] <= moment:
            index += 1
        value = steps[index][1]
        wobble = math.sin(moment * 0.37 + len(points)) * noise * value
        points.append((moment, round(value + wobble, 6)))
        moment += every
    return points


# --------------------------------------------------------------------------------------------
# The Prometheus-compatible server


class _BadData(Exception):
    pass


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response(
        {"status": "error", "errorType": "bad_data", "error": message}, status=status
    )


def _parse_time(name: str, raw: str | None, default: float | None = None) -> float:
    if raw is None or raw == "":
        if default is not None:
            return default
        raise _BadData(f'invalid parameter "{name}": cannot parse "" to a valid timestamp')
    try:
        value = float(raw)
    except ValueError:
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise _BadData(
                f'invalid parameter "{name}": cannot parse "{raw}" to a valid timestamp'
            ) from None
    if not math.isfinite(value):
        raise _BadData(f'invalid parameter "{name}": cannot parse "{raw}" to a valid timestamp')
    return value


def _parse_step(raw: str | None) -> float:
    if not raw:
        raise _BadData('invalid parameter "step": cannot parse "" to a valid duration')
    try:
        step = float(raw)
    except ValueError:
        match = _DURATION.match(raw)
        if match is None:
            raise _BadData(
                f'invalid parameter "step": cannot parse "{raw}" to a valid duration'
            ) from None
        step = float(match.group(1)) * _UNITS[match.group(2)]
    if step <= 0 or not math.isfinite(step):
        raise _BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
        )
    return step


def _query(params: Any) -> str:
    query = params.get("query")
    if query is None or not query.strip():
        raise _BadData('invalid parameter "query": 1:1: parse error: no expression found in input')
    return str(query).strip()


def _value_at(points: Sequence[tuple[float, float]], moment: float) -> float | None:
    """The latest sample at or before `moment`, if it is less than 5 minutes old."""
    found = None
    for stamp, value in points:
        if stamp > moment:
            break
        found = (stamp, value)
    if found is None or moment - found[0] > LOOKBACK_DELTA_S:
        return None
    return found[1]


def _number(value: float) -> str:
    return repr(value) if not float(value).is_integer() else str(int(value))


def _stamp(moment: float) -> float | int:
    return int(moment) if float(moment).is_integer() else round(moment, 3)


class _SamplePrometheus:
    def __init__(self, series: Sequence[SampleSeries]) -> None:
        self.by_query: dict[str, list[SampleSeries]] = {}
        for entry in series:
            self.by_query.setdefault(entry.query.strip(), []).append(entry)

    async def _params(self, request: web.Request) -> dict[str, str]:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        return params

    async def query_range(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        try:
            query = _query(params)
            start = _parse_time("start", params.get("start"))
            end = _parse_time("end", params.get("end"))
            step = _parse_step(params.get("step"))
        except _BadData as exc:
            return _bad(str(exc))
        if end < start:
            return _bad("end timestamp must not be before start time")
        if (end - start) / step > MAX_POINTS:
            return _bad(
                "exceeded maximum resolution of 11,000 points per timeseries. "
                "Try decreasing the query resolution (?step=XX)"
            )
        result = []
        for entry in self.by_query.get(query, []):
            values = []
            count = math.floor((end - start) / step + 1e-9) + 1
            for i in range(count):
                moment = start + i * step
                value = _value_at(entry.points, moment)
                if value is not None:
                    values.append([_stamp(moment), _number(value)])
            if values:
                result.append({"metric": entry.metric, "values": values})
        return web.json_response(
            {"status": "success", "data": {"resultType": "matrix", "result": result}}
        )

    async def query(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        now = datetime.now(UTC).timestamp()
        try:
            query = _query(params)
            moment = _parse_time("time", params.get("time"), default=now)
        except _BadData as exc:
            return _bad(str(exc))
        result = []
        for entry in self.by_query.get(query, []):
            value = _value_at(entry.points, moment)
            if value is not None:
                result.append({"metric": entry.metric, "value": [_stamp(moment), _number(value)]})
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    async def ready(self, request: web.Request) -> web.Response:
        return web.Response(text="Prometheus Server is Ready.\n")

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="Prometheus Server is Healthy.\n")

    async def buildinfo(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "success",
                "data": {
                    "version": "firebreak-sample",
                    "revision": "",
                    "branch": "",
                    "buildUser": "firebreak",
                    "buildDate": "",
                    "goVersion": "",
                },
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/v1/query_range", self.query_range)
        app.router.add_route("*", "/api/v1/query", self.query)
        app.router.add_get("/-/ready", self.ready)
        app.router.add_get("/-/healthy", self.healthy)
        app.router.add_get("/api/v1/status/buildinfo", self.buildinfo)
        return app


@asynccontextmanager
async def serve_sample_prometheus(
    series: Sequence[SampleSeries], *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve `series` Prometheus-style in the running event loop; yields the base URL."""
    runner = web.AppRunner(_SamplePrometheus(series).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        address = runner.addresses[0]
        yield f"http://{address[0]}:{address[1]}"
    finally:
        await runner.cleanup()
