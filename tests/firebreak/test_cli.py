"""The store commands of the CLI, run as a user runs them (the installed `firebreak` script),
against SQLite and PostgreSQL: `db upgrade` says what it applied, `db purge` applies the
retention, `incidents` and `incident ID` read what the JSON API reads."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, select, update

from firebreak.incidents import transitions
from firebreak.incidents.ingest import ingest
from firebreak.store import incidents
from firebreak.store.db import create_sync_engine
from firebreak.store.migrate import alembic_config, upgrade
from firebreak.store.models import Incident
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.store.schemas import EvidenceItem
from tests.support.analyses import make_analysis
from tests.support.payloads import alert, group

FIREBREAK = Path(sys.executable).parent / "firebreak"
HEAD = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://")).get_current_head()

# The newest migration, read from the migrations themselves (each new one moves it).
HEAD = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://")).get_current_head()


def cli(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--config", str(config)] if config else []
    return subprocess.run(
        [str(FIREBREAK), *args, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def write_config(tmp_path: Path, store_url: str, **store: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"store": {"url": store_url, **store}}))
    return path


def seed(conn: Connection, title_service: str, *, analysed: bool = False) -> int:
    payload = AlertmanagerPayload.model_validate(
        group(f"g-{title_service}", [alert("a1", service=title_service)])
    )
    outcome = ingest(conn, payload=payload, now=incidents.utcnow(), reopen_window_s=300)
    assert outcome.incident_id is not None
    if analysed:
        analysis = make_analysis(
            root_cause="The [bold]pool[/bold] shrank to 10 in deploy v2.4.1",
            confidence_score=80,
            evidence=[
                EvidenceItem(ref="L1", kind="log", source="app", text="pool exhausted 10/10")
            ],
        )
        incidents.save_analysis(conn, outcome.incident_id, analysis, {})
    return outcome.incident_id


def test_db_upgrade_says_what_it_applied(tmp_path: Path, store_url: str) -> None:
    config = write_config(tmp_path, store_url)
    upgrade(store_url, "0001")
    first = cli("db", "upgrade", config=config)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith(f": applied 0002 → {HEAD}")
    again = cli("db", "upgrade", config=config)
    assert again.stdout.strip().endswith(f": already at {HEAD}")


def test_db_upgrade_of_a_new_store_applies_every_migration(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    result = cli("db", "upgrade", config=config)
    assert result.stdout.strip() == (
        f"store at sqlite+aiosqlite:///{tmp_path / 'new.db'}: applied 0001 → {HEAD}"
    )


async def test_incidents_list_and_one_incident(tmp_path: Path, store_url: str) -> None:
    await asyncio.to_thread(upgrade, store_url)
    engine = create_sync_engine(store_url)
    with engine.begin() as conn:
        first = seed(conn, "checkout", analysed=True)
        second = seed(conn, "payments")
        transitions.acknowledge(conn, second, "U0BOB")
    engine.dispose()
    config = write_config(tmp_path, store_url)

    listed = cli("incidents", config=config)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "#" in line]
    assert "payments" in rows[0] and "acknowledged" in rows[0]  # newest first
    assert "checkout" in rows[1] and "triggered" in rows[1]

    only = cli("incidents", "--status", "acknowledged", config=config)
    assert "payments" in only.stdout and "checkout" not in only.stdout
    none = cli("incidents", "--status", "resolved", config=config)
    assert none.returncode == 0 and none.stdout.strip() == "No resolved incidents."
    bad = cli("incidents", "--status", "closed", config=config)
    assert bad.returncode == 2 and "invalid choice: 'closed'" in bad.stderr

    shown = cli("incident", f"#{first}", config=config)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    for fact in ("Status", "triggered", "Severity", "critical", "Service", "checkout"):
        assert fact in out, fact
    assert "The [bold]pool[/bold] shrank to 10" in out  # alert text is never Rich markup
    assert "Confidence 80% · COMPLETED" in out and "pool exhausted 10/10" in out
    assert "INCIDENT_CREATED" in out and "ALERT_RECEIVED" in out and "alertmanager" in out
    started = next(line for line in out.splitlines() if "Started" in line)
    assert "2026-11-22 10:00" in started  # the alert's startsAt, as the card says, not created_at

    acked = cli("incident", str(second), config=config)
    assert "by U0BOB" in acked.stdout and "No analysis yet." in acked.stdout
    assert "ACKNOWLEDGED" in acked.stdout

    missing = cli("incident", "999", config=config)
    assert missing.returncode == 1 and "There is no incident #999." in missing.stdout
    nonsense = cli("incident", "abc", config=config)
    assert nonsense.returncode == 2 and "'abc' is not an incident id" in nonsense.stderr


def test_reading_a_store_that_is_not_there(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'none.db'}"
    result = cli("incidents", config=write_config(tmp_path, url))
    assert result.returncode == 1
    assert "no store at" in result.stdout and "yet" in result.stdout
    assert not (tmp_path / "none.db").exists()  # reading never creates it


async def test_reading_a_store_never_migrated(tmp_path: Path, store_url: str) -> None:
    from sqlalchemy import create_engine

    from firebreak.store.db import sync_url

    engine = create_engine(sync_url(store_url))
    with engine.connect():  # creates the empty SQLite file
        pass
    engine.dispose()
    result = cli("incident", "1", config=write_config(tmp_path, store_url))
    assert result.returncode == 1
    assert "is not migrated yet: run `firebreak db upgrade`" in result.stdout


async def test_db_purge_applies_retention(tmp_path: Path, store_url: str) -> None:
    await asyncio.to_thread(upgrade, store_url)
    engine = create_sync_engine(store_url)
    old = datetime.now(UTC) - timedelta(days=10)
    with engine.begin() as conn:
        gone = seed(conn, "old")
        transitions.resolve(conn, gone, "U0BOB")
        conn.execute(update(Incident).where(Incident.id == gone).values(resolved_at=old))
        kept = seed(conn, "new")
        transitions.resolve(conn, kept, "U0BOB")
    no_retention = cli("db", "purge", config=write_config(tmp_path, store_url))
    assert no_retention.returncode == 2
    assert "set store.retention_days or pass --older-than-days N" in no_retention.stderr

    config = write_config(tmp_path, store_url, retention_days=7)
    purged = cli("db", "purge", "--batch", "1", config=config)
    assert purged.returncode == 0, purged.stderr
    assert ": purged 1 incident(s) resolved before " in purged.stdout
    assert "(7 days)" in purged.stdout
    with engine.connect() as conn:
        left = set(conn.scalars(select(Incident.id)))
    assert gone not in left and kept in left
    engine.dispose()

    override = cli("db", "purge", "--older-than-days", "0", config=config)
    assert override.returncode == 2 and "not a whole number of at least 1" in override.stderr


@pytest.mark.parametrize("days", [0, -3])
def test_retention_days_must_be_positive(tmp_path: Path, days: int) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    result = cli("db", "purge", config=write_config(tmp_path, url, retention_days=days))
    assert result.returncode == 2
    assert "store.retention_days: Input should be greater than or equal to 1" in result.stderr
