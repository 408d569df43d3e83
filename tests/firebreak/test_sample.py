"""The shipped sample (`examples/demo/`), materialised, served Prometheus-style and read by the
real tools; the sample Prometheus compared with the real one; `firebreak investigate` on it."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from firebreak.investigate import read_payload
from firebreak.sample import (
    ALERT_AGE,
    ANCHOR,
    SAMPLE_DIR,
    materialise,
    serve_sample_prometheus,
    shift_stamps,
)
from firebreak.tools import files, prometheus, promql
from firebreak.tools.config import InvestigationConfig
from firebreak.tools.files import FileSource
from firebreak.tools.models import AlertContext
from firebreak.tools.prometheus import PrometheusSource
from firebreak.tools.templating import render_query
from tests.support.promstack import run_prometheus

FIREBREAK = Path(sys.executable).parent / "firebreak"
NOW = datetime(2027, 3, 4, 15, 30, 7, tzinfo=UTC)
SECRET = "Sup3rS3cret-pw"  # the leaked database password in checkout.log


def context(payload: dict[str, Any]) -> AlertContext:
    alert = payload["alerts"][0]
    return AlertContext(
        labels=alert["labels"],
        annotations=alert["annotations"],
        starts_at=datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00")),
        generator_url=alert["generatorURL"],
    )


def test_shipped_files_tell_the_story() -> None:
    payload = json.loads((SAMPLE_DIR / "alert.json").read_text())
    assert payload["version"] == "4" and payload["status"] == "firing"
    labels = payload["alerts"][0]["labels"]
    assert labels["alertname"] == "HighErrorRate" and labels["service"] == "checkout"
    assert labels["severity"] == "critical"
    assert "g0.expr=" in payload["alerts"][0]["generatorURL"]
    log = (SAMPLE_DIR / "checkout.log").read_text().splitlines()
    body = [line for line in log if not line.startswith("#")]
    assert 180 <= len(body) <= 260
    assert sum("deploy checkout v2.4.1" in line for line in body) == 2  # started, complete
    assert sum("payment gateway timeout" in line for line in body) >= 40
    assert any(SECRET in line for line in body)
    assert any("Ignore all previous instructions" in line for line in body)


def test_materialise_shifts_everything_to_now(tmp_path: Path) -> None:
    stack = materialise(tmp_path, NOW)
    assert stack.alert_start == NOW.replace(microsecond=0) - ALERT_AGE
    assert stack.payload["alerts"][0]["startsAt"] == "2027-03-04T15:28:07Z"
    assert stack.payload["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    parsed = read_payload(stack.alert_path)  # the app's own parser accepts it
    assert parsed.alerts[0].starts_at == stack.alert_start

    lines = stack.log_path.read_text().splitlines()
    assert not any(line.startswith("#") for line in lines)
    stamps = [files.parse_timestamp(line) for line in lines]
    assert all(stamps)
    assert stamps == sorted(stamps)
    assert stack.alert_start - timedelta(minutes=31) < stamps[0] < stack.alert_start
    assert stack.alert_start < stamps[-1] <= NOW  # the log reaches "now" but not beyond
    deploy = next(s for s, line in zip(stamps, lines, strict=True) if "deploy checkout" in line)
    first_error = next(s for s, line in zip(stamps, lines, strict=True) if "ERROR" in line)
    assert deploy < first_error < stack.alert_start

    # Each query template renders, with the alert's labels, to the query its series answers.
    alert = context(stack.payload)
    by_template = {s.template: s.query for s in stack.series if s.template}
    assert set(stack.queries) == set(by_template)
    for template, query in by_template.items():
        assert render_query(template, alert) == query
    expression = promql.strip_threshold(promql.alert_expression(alert.generator_url))
    assert expression in {s.query for s in stack.series}
    for series in stack.series:
        assert series.points[0][0] == pytest.approx(stack.alert_start.timestamp() - 1800)


def test_quoted_times_move_with_the_story(tmp_path: Path) -> None:
    """A message that quotes a time (a certificate's expiry, a pod's last termination) moves
    with the line it is in, each time kept to its own precision; a date alone stays."""
    line = (
        "2026-11-22T09:58:03.120Z ERROR x509: certificate has expired or is not yet valid: "
        "current time 2026-11-22T09:58:03Z is after 2026-11-22T09:58:00.000000Z (rates-2026-11)"
    )
    assert shift_stamps(line, timedelta(days=1, seconds=2)) == (
        "2026-11-23T09:58:05.120Z ERROR x509: certificate has expired or is not yet valid: "
        "current time 2026-11-23T09:58:05Z is after 2026-11-23T09:58:02.000000Z (rates-2026-11)"
    )
    source = tmp_path / "story"
    source.mkdir()
    (source / "alert.json").write_text((SAMPLE_DIR / "alert.json").read_text())
    (source / "app.log").write_text("# a comment\n" + line + "\n")
    stack = materialise(tmp_path / "out", NOW, source=source)
    assert stack.shift == stack.alert_start - ANCHOR
    assert stack.log_path.read_text() == shift_stamps(line, stack.shift) + "\n"


async def test_fetch_metrics_against_the_sample_prometheus(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    stack = materialise(tmp_path, now)
    alert = context(stack.payload)
    async with serve_sample_prometheus(stack.series) as url:
        source = PrometheusSource(type="prometheus", name="sample", url=url, queries=stack.queries)
        readings, report = await prometheus.fetch_metrics(source, alert, InvestigationConfig())
    assert report.error is None
    assert report.items == len(stack.series) == 4
    by_query = {r.query: r for r in readings}
    error_ratio = by_query[promql.strip_threshold(promql.alert_expression(alert.generator_url))]
    assert error_ratio.baseline is not None and error_ratio.baseline < 0.01
    assert error_ratio.current is not None and error_ratio.current > 0.15
    assert error_ratio.changed_at is not None
    assert abs(error_ratio.changed_at - stack.alert_start) < timedelta(minutes=5)
    pool = by_query['connection_pool_in_use{service="checkout"}']
    assert pool.peak == 10 and pool.changed_at is not None
    assert abs(pool.changed_at - stack.alert_start) < timedelta(minutes=5)
    latency = next(r for r in readings if r.query.startswith("histogram_quantile"))
    assert latency.current is not None and latency.current > 4
    steady = by_query['sum(rate(http_requests_total{service="checkout"}[5m]))']
    assert steady.changed_at is None  # the control series: traffic did not spike


async def test_fetch_logs_on_the_materialised_log_returns_the_burst(tmp_path: Path) -> None:
    stack = materialise(tmp_path, datetime.now(UTC))
    source = FileSource(type="file", name="app", path=str(stack.log_path.parent / "*.log"))
    lines, report = await files.fetch_logs(source, context(stack.payload), InvestigationConfig())
    assert report.error is None
    texts = [line.text for line in lines]
    burst = [t for t in texts if "payment gateway timeout" in t and "pool exhausted" in t]
    assert len(burst) >= 40
    assert any("deploy checkout v2.4.1" in t for t in texts)


S_E = {"start": "{s}", "end": "{e}"}
SAMPLE_REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    # (method, path, params) — answered alike by the sample and by a real Prometheus
    ("GET", "/api/v1/query_range", {"query": "no_such_metric", **S_E, "step": "15"}),
    ("POST", "/api/v1/query_range", {"query": "no_such_metric", **S_E, "step": "15s"}),
    ("GET", "/api/v1/query", {"query": "no_such_metric"}),
    ("GET", "/api/v1/query_range", {**S_E, "step": "15"}),
    ("GET", "/api/v1/query_range", {"query": "up", "start": "today", "end": "{e}", "step": "15"}),
    ("GET", "/api/v1/query_range", {"query": "up", **S_E, "step": "0"}),
    ("GET", "/api/v1/query_range", {"query": "up", "start": "{e}", "end": "{s}", "step": "15"}),
    ("GET", "/api/v1/query_range", {"query": "up", **S_E, "step": "0.01"}),
]


async def test_sample_prometheus_answers_like_the_real_one(tmp_path: Path) -> None:
    end = datetime.now(UTC).timestamp()
    start = end - 3600

    def fill(params: dict[str, str]) -> dict[str, str]:
        return {k: v.format(s=f"{start:.3f}", e=f"{end:.3f}") for k, v in params.items()}

    async def ask(client: httpx.AsyncClient, base: str) -> list[tuple[int, Any]]:
        answers = []
        for method, path, params in SAMPLE_REQUESTS:
            if method == "GET":
                response = await client.get(base + path, params=fill(params))
            else:
                response = await client.post(base + path, data=fill(params))
            body = response.json()
            shape = body.get("errorType") if body["status"] == "error" else body["data"]
            answers.append((response.status_code, shape))
        for path in ("/-/ready", "/api/v1/status/buildinfo"):
            answers.append(((await client.get(base + path)).status_code, path))
        return answers

    stack = materialise(tmp_path, datetime.now(UTC))
    with run_prometheus(tmp_path) as real:
        async with (
            serve_sample_prometheus(stack.series) as sample,
            httpx.AsyncClient(timeout=10) as client,
        ):
            assert await ask(client, sample) == await ask(client, real)


async def test_sample_prometheus_serves_instant_queries(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    stack = materialise(tmp_path, now)
    series = next(s for s in stack.series if s.query.startswith("connection_pool_in_use"))
    async with serve_sample_prometheus(stack.series) as url, httpx.AsyncClient() as client:
        answer = (await client.get(url + "/api/v1/query", params={"query": series.query})).json()
    assert answer["status"] == "success" and answer["data"]["resultType"] == "vector"
    [result] = answer["data"]["result"]
    assert result["metric"]["pool"] == "payment-gateway"
    assert float(result["value"][1]) == series.points[-1][1]  # the latest sample, as a string
    assert isinstance(result["value"][1], str)


@pytest.mark.parametrize("when", ["shipped", "now"])
async def test_investigate_cli_on_the_sample(tmp_path: Path, when: str) -> None:
    """`shipped`: the shipped `examples/demo/alert.json` as is, with the log and series
    materialised at their anchor (no shift); `now`: everything shifted to the present."""
    if when == "shipped":
        stack = materialise(tmp_path / "sample", ANCHOR + ALERT_AGE)
        alert_file = SAMPLE_DIR / "alert.json"
        assert json.loads(alert_file.read_text()) == stack.payload
    else:
        stack = materialise(tmp_path / "sample", datetime.now(UTC))
        alert_file = stack.alert_path
    async with serve_sample_prometheus(stack.series) as url:
        config = {
            "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"},
            "slack": {"mode": "console"},
            "llm": {"provider": "offline"},
            "sources": {
                "logs": [{"name": "app", "type": "file", "path": str(stack.log_path)}],
                "metrics": [
                    {
                        "name": "prometheus",
                        "type": "prometheus",
                        "url": url,
                        "queries": stack.queries,
                    }
                ],
            },
        }
        (tmp_path / "config.yaml").write_text(json.dumps(config))
        proc = await asyncio.create_subprocess_exec(
            str(FIREBREAK),
            "investigate",
            "--alert",
            str(alert_file),
            "--config",
            str(tmp_path / "config.yaml"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    analysis = json.loads(out)
    assert analysis["execution_status"] == "COMPLETED"
    root_cause = analysis["root_cause"].lower()
    assert "payment gateway timeout" in root_cause and "pool" in root_cause
    assert "deploy checkout v2.4.1" in root_cause
    assert "dns" not in root_cause  # the prompt injection in the log is evidence, not orders
    assert SECRET not in out.decode() + err.decode()
    kinds = {item["kind"] for item in analysis["evidence"]}
    assert kinds == {"log", "metric"}
