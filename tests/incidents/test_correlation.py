"""Correlation: related incidents named, correlated groups merged into one incident (one card,
one ladder, resolved when all groups are), and redelivery of a merged group's
notifications."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import func, select

from firebreak.config import Config, ConfigError, load_config
from firebreak.incidents import transitions
from firebreak.incidents.config import CorrelationConfig, IngestConfig
from firebreak.incidents.events import Change, EventBus, IncidentEvent
from firebreak.incidents.flows import AlertIntake
from firebreak.incidents.ingest import IngestOutcome, ingest
from firebreak.store import incidents
from firebreak.store.db import create_engine, create_sync_engine
from firebreak.store.migrate import upgrade
from firebreak.store.models import Incident, IncidentGroup
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.store.schemas import IncidentOut
from firebreak.store.writer import Writer
from tests.support.payloads import alert, group


def placed(
    fingerprint: str,
    *,
    cluster: str = "prod-eu",
    namespace: str = "shop",
    alertname: str = "HighErrorRate",
    **kwargs: Any,
) -> dict[str, Any]:
    """An alert of `alertname` in one cluster and namespace."""
    made = alert(fingerprint, alertname=alertname, **kwargs)
    made["labels"] |= {"cluster": cluster, "namespace": namespace}
    return made


class Rig:
    def __init__(self, url: str, correlation: CorrelationConfig) -> None:
        self.engine = create_engine(url)
        self.writer = Writer(create_sync_engine(url))
        self.correlation = correlation

    async def send(self, payload: dict[str, Any], *, now: datetime | None = None) -> IngestOutcome:
        return await self.writer.run(
            partial(
                ingest,
                payload=AlertmanagerPayload.model_validate(payload),
                now=now or incidents.utcnow(),
                reopen_window_s=300,
                correlation=self.correlation,
            )
        )

    async def incident(self, incident_id: int | None) -> IncidentOut:
        assert incident_id is not None
        async with self.engine.connect() as conn:
            found = await incidents.get_incident(conn, incident_id)
        assert found is not None
        return found

    async def events(self, incident_id: int | None, kind: str) -> list[Any]:
        assert incident_id is not None
        async with self.engine.connect() as conn:
            events = await incidents.timeline(conn, incident_id)
        return [event for event in events or [] if event.type == kind]

    async def incidents(self) -> int:
        async with self.engine.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(Incident)) or 0


@pytest.fixture
async def rigs(store_url: str) -> AsyncIterator[dict[str, Rig]]:
    await asyncio.to_thread(upgrade, store_url)
    made = {
        "link": Rig(store_url, CorrelationConfig(merge=False)),
        "merge": Rig(store_url, CorrelationConfig(merge=True)),
    }
    for rig in made.values():
        await rig.writer.start()
    yield made
    for rig in made.values():
        await rig.writer.stop()
        await rig.engine.dispose()


async def test_correlated_incidents_are_linked_both_ways(rigs: dict[str, Rig]) -> None:
    rig = rigs["link"]
    first = await rig.send(group("g-errors", [placed("a")]))
    second = await rig.send(group("g-latency", [placed("b", alertname="HighLatency")]))
    elsewhere = await rig.send(group("g-other", [placed("c", namespace="payments")]))

    assert first.opened and second.opened and elsewhere.opened
    assert second.correlated == (first.incident_id,)
    assert elsewhere.correlated == ()
    assert (await rig.incident(first.incident_id)).related == [second.incident_id]
    assert (await rig.incident(second.incident_id)).related == [first.incident_id]
    assert (await rig.incident(elsewhere.incident_id)).related == []


async def test_no_correlation_without_every_label_or_outside_the_window(
    rigs: dict[str, Rig],
) -> None:
    rig = rigs["merge"]
    unplaced = alert("a")  # no cluster, no namespace
    first = await rig.send(group("g1", [unplaced]))
    second = await rig.send(group("g2", [alert("b")]))
    assert first.incident_id != second.incident_id and second.correlated == ()

    early = await rig.send(group("g3", [placed("c")]))
    later = incidents.utcnow() + timedelta(seconds=301)
    late = await rig.send(group("g4", [placed("d")]), now=later)
    assert late.opened and not late.joined and late.incident_id != early.incident_id


async def test_merge_joins_the_open_incident_once(rigs: dict[str, Rig]) -> None:
    rig = rigs["merge"]
    first = await rig.send(group("g-errors", [placed("a"), placed("b")]))
    joining = group("g-latency", [placed("c", alertname="HighLatency")])
    joined = await rig.send(joining)
    again = await rig.send(joining)  # Alertmanager redelivers
    more = await rig.send(group("g-latency", [placed("c", alertname="HighLatency"), placed("d")]))

    assert joined.incident_id == first.incident_id == again.incident_id == more.incident_id
    assert joined.joined and not joined.opened  # no second card, no second ladder
    assert again == IngestOutcome(incident_id=first.incident_id)
    assert not more.opened and not more.joined and more.alerts_written == 1
    incident = await rig.incident(first.incident_id)
    assert incident.alert_count == 4 and incident.status == "triggered"
    assert await rig.incidents() == 1
    received = await rig.events(first.incident_id, "ALERT_RECEIVED")
    assert [e.data["group_key"] for e in received] == ["g-errors", "g-latency", "g-latency"]
    assert "alertname=HighLatency" in received[1].message and received[1].data["joined"]
    assert len(await rig.events(first.incident_id, "INCIDENT_CREATED")) == 1


async def test_merged_incident_resolves_when_every_group_has(rigs: dict[str, Rig]) -> None:
    rig = rigs["merge"]
    first = await rig.send(group("g1", [placed("a")]))
    await rig.send(group("g2", [placed("b", alertname="HighLatency")]))

    half = await rig.send(group("g1", [placed("a", status="resolved")]))
    assert not half.resolved
    assert (await rig.incident(first.incident_id)).status == "triggered"

    done = await rig.send(group("g2", [placed("b", alertname="HighLatency", status="resolved")]))
    assert done.resolved and done.incident_id == first.incident_id
    assert done.resolved_after_s is not None and done.resolved_after_s >= 0
    incident = await rig.incident(first.incident_id)
    assert incident.status == "resolved" and incident.resolved_at is not None
    assert len(await rig.events(first.incident_id, "RESOLVED")) == 1


async def test_a_resolved_incident_never_absorbs_a_group(rigs: dict[str, Rig]) -> None:
    rig = rigs["merge"]
    first = await rig.send(group("g1", [placed("a")]))
    async with rig.engine.begin() as conn:
        await conn.run_sync(transitions.resolve, first.incident_id, "U0ALICE")
    second = await rig.send(group("g2", [placed("b", alertname="HighLatency")]))

    assert second.opened and not second.joined and second.incident_id != first.incident_id
    assert second.correlated == (first.incident_id,)  # still named as related
    assert (await rig.incident(first.incident_id)).status == "resolved"


async def test_non_firing_alerts_open_and_join_nothing(rigs: dict[str, Rig]) -> None:
    rig = rigs["merge"]
    first = await rig.send(group("g1", [placed("a")]))
    stray = await rig.send(group("g2", [placed("b", status="resolved")]))
    assert stray == IngestOutcome()
    assert (await rig.incident(first.incident_id)).alert_count == 1
    async with rig.engine.connect() as conn:
        groups = await conn.scalar(select(func.count()).select_from(IncidentGroup))
    assert groups == 1


async def test_resolved_group_with_a_firing_alert_resolves_only_what_says_so(
    rigs: dict[str, Rig],
) -> None:
    rig = rigs["link"]
    opened = await rig.send(group("g1", [placed("a"), placed("b")]))
    mixed = group("g1", [placed("a", status="resolved"), placed("b")], status="resolved")
    outcome = await rig.send(mixed)

    assert not outcome.resolved
    incident = await rig.incident(opened.incident_id)
    assert incident.status == "triggered"
    assert {a.fingerprint: a.status for a in incident.alerts} == {"a": "resolved", "b": "firing"}
    assert await rig.events(opened.incident_id, "RESOLVED") == []


async def test_a_replayed_older_payload_never_moves_starts_at_back(rigs: dict[str, Rig]) -> None:
    rig = rigs["link"]
    old = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    new = old + timedelta(hours=1)
    opened = await rig.send(group("g1", [placed("a", starts_at=old)]))
    await rig.send(group("g1", [placed("a", starts_at=old, status="resolved")]))
    refired = await rig.send(group("g1", [placed("a", starts_at=new)]))
    assert refired.reopened and refired.incident_id == opened.incident_id

    replayed = await rig.send(group("g1", [placed("a", starts_at=old, status="resolved")]))
    assert replayed == IngestOutcome(incident_id=opened.incident_id)
    incident = await rig.incident(opened.incident_id)
    assert incident.status == "triggered"
    assert [(a.status, a.starts_at) for a in incident.alerts] == [("firing", new)]


async def test_the_intake_refreshes_the_cards_of_correlated_incidents(writer: Writer) -> None:
    """The older incident's card must name the newer one too: the bus says so."""
    bus = EventBus()
    seen: list[IncidentEvent] = []
    bus.subscribe(seen.append)
    registry = CollectorRegistry()
    intake = AlertIntake(
        writer=writer,
        bus=bus,
        config=IngestConfig(),
        opened=Counter("opened", "", registry=registry),
        resolved=Counter("resolved", "", registry=registry),
        correlation=CorrelationConfig(),
    )
    first = await intake.ingest(AlertmanagerPayload.model_validate(group("g1", [placed("a")])))
    second = await intake.ingest(AlertmanagerPayload.model_validate(group("g2", [placed("b")])))
    assert [(e.incident_id, e.change) for e in seen] == [
        (first.incident_id, Change.OPENED),
        (second.incident_id, Change.OPENED),
        (first.incident_id, Change.ALERTS),
    ]


@pytest.mark.parametrize(
    ("section", "key"),
    [({"window_s": -1}, "window_s"), ({"merge": "maybe"}, "merge"), ({"lables": []}, "lables")],
)
def test_a_bad_correlation_section_is_refused_naming_the_key(
    tmp_path: Path, section: dict[str, Any], key: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"correlation": section}))
    with pytest.raises(ConfigError, match=rf"correlation\.{key}"):
        load_config(path)
    assert load_config_text(tmp_path, {}).correlation == CorrelationConfig()


def load_config_text(tmp_path: Path, body: dict[str, Any]) -> Config:
    path = tmp_path / "empty.yaml"
    path.write_text(yaml.safe_dump(body))
    return load_config(path)
