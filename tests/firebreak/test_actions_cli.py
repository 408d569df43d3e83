"""`firebreak ack|resolve|escalate|note`, run as a user runs them (the installed script) against
SQLite and PostgreSQL: the timeline records who acted, Slack is told through the outbox rows a
running server delivers, and what was not done exits 1 with the reason."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path
from typing import Any

from firebreak.store import incidents, outbox
from firebreak.store.db import create_engine, create_sync_engine
from firebreak.store.migrate import upgrade
from tests.firebreak.test_cli import cli, seed

POLICY = {"name": "default", "levels": [{"notify": ["U0ONCALL", "C0SRE"], "timeout_s": 600}]}


def write_config(tmp_path: Path, store_url: str, **sections: Any) -> Path:
    path = tmp_path / "config.yaml"
    config = {"store": {"url": store_url}, "slack": {"mode": "console", "channel": "C0INC"}}
    path.write_text(json.dumps({**config, **sections}))
    return path


async def seeded(store_url: str) -> int:
    await asyncio.to_thread(upgrade, store_url)
    engine = create_sync_engine(store_url)
    with engine.begin() as conn:
        incident_id = seed(conn, "checkout")
    engine.dispose()
    return incident_id


async def stored(store_url: str, incident_id: int) -> tuple[list[Any], list[outbox.OutboxItem]]:
    """The incident's timeline, and the Slack outbox rows waiting for a server."""
    engine = create_engine(store_url)
    try:
        async with engine.connect() as conn:
            events = await incidents.timeline(conn, incident_id) or []
            rows = await outbox.pending(conn)
    finally:
        await engine.dispose()
    return events, rows


async def test_act_on_an_incident_from_the_command_line(tmp_path: Path, store_url: str) -> None:
    incident_id = await seeded(store_url)
    config = write_config(tmp_path, store_url, escalation={"policies": [POLICY]})

    escalated = cli("escalate", str(incident_id), config=config)
    assert escalated.returncode == 0, escalated.stderr
    assert escalated.stdout == f"#{incident_id} escalated to level 1: U0ONCALL, C0SRE paged.\n"
    acked = cli("ack", f"#{incident_id}", "--by", "alice", config=config)
    assert acked.returncode == 0, acked.stderr
    assert acked.stdout == f"#{incident_id} acknowledged by alice; escalation stopped.\n"
    again = cli("ack", str(incident_id), "--by", "bob", config=config)
    assert again.returncode == 0 and "already acknowledged by alice" in again.stdout
    noted = cli("note", str(incident_id), "rolled back v2.4.1", "--by", "alice", config=config)
    assert noted.returncode == 0, noted.stderr
    resolved = cli("resolve", str(incident_id), "--by", "alice", config=config)
    assert resolved.returncode == 0 and resolved.stdout == f"#{incident_id} resolved by alice.\n"

    events, rows = await stored(store_url, incident_id)
    by_type = {e.type: e for e in events}
    assert by_type["ESCALATED"].actor == getpass.getuser()  # --by defaults to the OS user
    assert by_type["ACKNOWLEDGED"].actor == "alice"
    assert (by_type["NOTE"].actor, by_type["NOTE"].message) == ("alice", "rolled back v2.4.1")
    assert by_type["RESOLVED"].actor == "alice"
    assert [e.type for e in events].count("ACKNOWLEDGED") == 1

    # Slack is told as the server tells it, through rows its drainer delivers
    said = {(row.kind, row.purpose) for row in rows}
    assert ("card", "card") in said and ("thread", "resolution") in said
    assert ("dm", "dm") in said  # the paged user
    [channel_page] = [row for row in rows if row.kind == "message"]
    assert channel_page.payload["channel"] == "C0SRE" and "<!here>" in channel_page.payload["text"]

    late = cli("escalate", str(incident_id), config=config)
    assert late.returncode == 1
    assert late.stderr == f"firebreak escalate: #{incident_id} is resolved: nothing to escalate.\n"
    ack_resolved = cli("ack", str(incident_id), config=config)
    assert ack_resolved.returncode == 1 and "already resolved" in ack_resolved.stderr


async def test_unknown_incidents_and_refusals_exit_1(tmp_path: Path, store_url: str) -> None:
    incident_id = await seeded(store_url)
    config = write_config(tmp_path, store_url)  # no escalation policy
    for args in (("ack", "999"), ("resolve", "999"), ("escalate", "999"), ("note", "999", "x")):
        answer = cli(*args, config=config)
        assert answer.returncode == 1, answer.stdout
        assert answer.stderr == f"firebreak {args[0]}: There is no incident #999.\n"

    nobody = cli("escalate", str(incident_id), config=config)
    assert nobody.returncode == 1
    assert f"No escalation policy matches #{incident_id}, so there is nobody to page" in (
        nobody.stderr
    )
    events, _ = await stored(store_url, incident_id)
    assert "ESCALATED" not in [e.type for e in events]

    for args, problem in (
        (("note", str(incident_id), "  "), "a note needs some text"),
        (("ack", str(incident_id), "--by", "x" * 65), "is not a name or Slack user id"),
        (("ack", "twelve"), "'twelve' is not an incident id"),
    ):
        refused = cli(*args, config=config)
        assert refused.returncode == 2 and problem in refused.stderr


def test_acting_on_a_store_that_is_not_there(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'none.db'}")
    answer = cli("ack", "1", config=config)
    assert answer.returncode == 1 and "no store at" in answer.stderr
    assert not (tmp_path / "none.db").exists()
