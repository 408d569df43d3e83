"""`firebreak_incidents_open{status}` on `/metrics` is what the store holds at scrape time."""

from __future__ import annotations

from functools import partial

from prometheus_client.parser import text_string_to_metric_families

from firebreak.incidents import transitions
from firebreak.store.counts import refresh_open_gauge
from firebreak.store.db import create_engine
from firebreak.tools.metrics import Metrics
from tests.conftest import make_config
from tests.fakes.llm_servers import closed_port_url
from tests.support.app import RunningApp, run_app
from tests.support.payloads import alert, group


async def open_gauge(app: RunningApp) -> dict[str, float]:
    response = await app.client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        if family.name == "firebreak_incidents_open":
            return {s.labels["status"]: s.value for s in family.samples}
    raise AssertionError("no firebreak_incidents_open on /metrics")


async def test_open_incidents_gauge_follows_the_store(store_url: str) -> None:
    async with run_app(make_config(store_url)) as app:
        assert await open_gauge(app) == {"triggered": 0, "acknowledged": 0}
        ids = []
        for key in ("g1", "g2", "g3"):
            response = await app.client.post(
                "/webhooks/alertmanager", json=group(key, [alert(f"{key}-a")])
            )
            ids.append(response.json()["incident_id"])
        assert await open_gauge(app) == {"triggered": 3, "acknowledged": 0}

        writer = app.runtime.writer
        await writer.run(partial(transitions.acknowledge, incident_id=ids[0], actor="U0BOB"))
        await writer.run(partial(transitions.resolve, incident_id=ids[1], actor="U0BOB"))
        assert await open_gauge(app) == {"triggered": 1, "acknowledged": 1}


async def test_an_unreachable_store_drops_the_series() -> None:
    metrics = Metrics()
    metrics.incidents_open.labels("triggered").set(4)
    port = closed_port_url("ollama").rsplit(":", 1)[1]
    engine = create_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{port}/none")
    try:
        await refresh_open_gauge(metrics.incidents_open, engine)  # no exception: scrape still works
    finally:
        await engine.dispose()
    assert (
        metrics.registry.get_sample_value("firebreak_incidents_open", {"status": "triggered"})
        is None
    )
