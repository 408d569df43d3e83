"""Two replicas on one PostgreSQL receiving correlated groups at the same moment still make one
incident per correlation (`correlation.merge`): the webhooks go over HTTP to two real app
instances at once."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from firebreak.store.models import Incident, IncidentGroup
from tests.conftest import make_config
from tests.support.app import run_app
from tests.support.payloads import alert, group

NAMESPACES = 8
ROUNDS = 3


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session's PostgreSQL database with an empty schema (only PostgreSQL has replicas)."""
    sync = make_url(pg_database).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(sync, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return pg_database


def correlated(kind: str, namespace: str, round_: int) -> dict:
    made = alert(f"{kind}-{namespace}-{round_}", alertname=kind, service=f"svc-{namespace}")
    made["labels"] |= {"cluster": "prod-eu", "namespace": namespace}
    return group(f"{kind}/{namespace}/{round_}", [made])


async def test_two_replicas_merge_correlated_groups_into_one_incident(pg_url: str) -> None:
    config = make_config(
        pg_url, correlation={"merge": True, "window_s": 300, "labels": ["cluster", "namespace"]}
    )
    async with run_app(config) as one, run_app(config) as two:
        for round_ in range(ROUNDS):
            names = [f"ns{round_}-{n}" for n in range(NAMESPACES)]
            sends = [
                app.client.post("/webhooks/alertmanager", json=correlated(kind, name, round_))
                for name in names
                for app, kind in ((one, "HighErrorRate"), (two, "HighLatency"))
            ]
            answers = await asyncio.gather(*sends)
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]

        async with one.runtime.engine.connect() as conn:
            incidents = (
                await conn.execute(select(Incident.id, Incident.labels, Incident.alert_count))
            ).all()
            groups = dict(
                (
                    await conn.execute(
                        select(IncidentGroup.incident_id, func.count()).group_by(
                            IncidentGroup.incident_id
                        )
                    )
                ).all()
            )
    assert len(incidents) == ROUNDS * NAMESPACES
    assert len({row.labels["namespace"] for row in incidents}) == ROUNDS * NAMESPACES
    assert all(row.alert_count == 2 for row in incidents)
    assert all(groups[row.id] == 2 for row in incidents)
