"""`firebreak incidents`, `firebreak incident ID` and `firebreak open ID`: the store, read from
a terminal.

Reads go through the same `firebreak.store.incidents` queries the JSON API answers from, so
the terminal and `GET /api/v1/incidents…` never disagree. Nothing is written: a SQLite file
that does not exist is not created, a store that was never migrated is said to be so.

Everything shown comes from alerts and people (titles, labels, notes), so it is printed as
plain `Text`, never parsed as Rich markup: a title with `[brackets]` stays as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.config import Config, Secrets
from firebreak.store import incidents
from firebreak.store.db import create_engine, is_migrated
from firebreak.store.schemas import Analysis, IncidentOut, IncidentStatus, TimelineEventOut
from firebreak.tools.redact import Redactor
from firebreak.tools.text import duration

__all__ = [
    "StoreUnreadable",
    "ensure_store",
    "incident_view",
    "incidents_table",
    "show_incident",
    "show_list",
    "show_page_link",
]

STATUS_STYLE = {
    IncidentStatus.TRIGGERED: "bold red",
    IncidentStatus.ACKNOWLEDGED: "yellow",
    IncidentStatus.RESOLVED: "green",
}
MAX_LISTED = 100

T = TypeVar("T")


class StoreUnreadable(Exception):
    """The store cannot be read: missing, never migrated or unreachable (one line)."""


def show_list(config: Config, status: IncidentStatus | None, console: Console) -> int:
    """Print the incidents (newest first, at most `MAX_LISTED`); 0, or 1 if unreadable."""
    try:
        found = _read(config, lambda conn: _list(conn, status))
    except StoreUnreadable as exc:
        console.print(Text(str(exc), style="red"), soft_wrap=True)
        return 1
    if not found:
        which = f"{status.value} " if status else ""
        console.print(Text(f"No {which}incidents."))
        return 0
    scrub = Redactor.from_config(config.investigation).redact_value
    console.print(incidents_table([incident.shown(scrub) for incident in found]))
    return 0


def show_incident(config: Config, incident_id: int, console: Console) -> int:
    """Print one incident: its card's facts, the latest RCA and the timeline; 1 if missing."""
    try:
        found = _read(config, lambda conn: _one(conn, incident_id))
    except StoreUnreadable as exc:
        console.print(Text(str(exc), style="red"), soft_wrap=True)
        return 1
    if found is None:
        console.print(Text(f"There is no incident #{incident_id}.", style="red"))
        return 1
    incident, events = found
    scrub = Redactor.from_config(config.investigation).redact_value
    console.print(incident_view(incident.shown(scrub), events))
    return 0


def show_page_link(
    config: Config, secrets: Secrets, incident_id: int, person: str, console: Console
) -> int:
    """Print the incident's page URL, signed as the Slack card signs it (bot/web/auth.py), so
    a browser opens it with the API token set, and made for `person` (the page's forms act as
    them); 1 when there is no such incident."""
    from firebreak.bot.web.auth import incident_link  # Starlette: only for this command

    try:
        found = _read(config, lambda conn: incidents.exists(conn, incident_id))
    except StoreUnreadable as exc:
        console.print(Text(str(exc), style="red"), soft_wrap=True)
        return 1
    if not found:
        console.print(Text(f"There is no incident #{incident_id}.", style="red"))
        return 1
    now = datetime.now(UTC)
    url = incident_link(config.server.public_url, incident_id, secrets, now, person=person)
    console.print(Text(url), soft_wrap=True)
    return 0


async def _list(conn: AsyncConnection, status: IncidentStatus | None) -> list[IncidentOut]:
    return await incidents.list_incidents(conn, status, limit=MAX_LISTED)


async def _one(
    conn: AsyncConnection, incident_id: int
) -> tuple[IncidentOut, list[TimelineEventOut]] | None:
    incident = await incidents.get_incident(conn, incident_id)
    if incident is None:
        return None
    return incident, await incidents.timeline(conn, incident_id) or []


def ensure_store(config: Config) -> None:
    """StoreUnreadable when the store is a SQLite file not created yet (opening it would
    create an empty one); whether it is migrated is asked once connected."""
    url = make_url(config.store.url)
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database != ":memory:":
        if not database or not Path(database).exists():
            raise StoreUnreadable(
                f"no store at {_shown(config)} yet (`firebreak serve` or `firebreak db upgrade` "
                "creates it)"
            )


def _shown(config: Config) -> str:
    return make_url(config.store.url).render_as_string(hide_password=True)


def _read(config: Config, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    ensure_store(config)
    return asyncio.run(_query(config.store.url, _shown(config), query))


async def _query(url: str, shown: str, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            if not await conn.run_sync(is_migrated):
                raise StoreUnreadable(
                    f"the store at {shown} is not migrated yet: run `firebreak db upgrade`"
                )
            return await query(conn)
    except (DBAPIError, OSError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise StoreUnreadable(f"cannot read the store at {shown}: {reason}") from None
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------------------------
# Rendering


def incidents_table(found: list[IncidentOut], now: datetime | None = None) -> Table:
    now = now or datetime.now(UTC)
    table = Table(header_style="bold", show_lines=False)
    for column, justify in (
        ("id", "right"),
        ("status", "left"),
        ("severity", "left"),
        ("service", "left"),
        ("title", "left"),
        ("alerts", "right"),
        ("age", "right"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for incident in found:
        table.add_row(
            Text(f"#{incident.id}"),
            _status(incident.status),
            Text(incident.severity),
            Text(incident.service),
            Text(incident.title),
            Text(str(incident.alert_count)),
            Text(duration(now - incident.created_at)),
        )
    return table


def incident_view(incident: IncidentOut, events: list[TimelineEventOut]) -> RenderableType:
    parts: list[RenderableType] = [
        Panel(_facts(incident), title=Text(f"#{incident.id} {incident.title}", style="bold"))
    ]
    if incident.analysis is not None:
        parts.append(Panel(_rca(incident.analysis), title=Text("Root-cause analysis")))
    else:
        parts.append(Text("No analysis yet.", style="dim"))
    parts.append(_timeline(events))
    return Group(*parts)


def _facts(incident: IncidentOut) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    ack = _when(incident.acknowledged_at)
    if incident.acknowledged_by:
        ack = f"{ack} by {incident.acknowledged_by}"
    rows: list[tuple[str, Text]] = [
        ("Status", _status(incident.status)),
        ("Severity", Text(incident.severity)),
        ("Service", Text(incident.service)),
        ("Alerts", Text(_alerts(incident))),
        ("Escalation level", Text(str(incident.escalation_level))),
        ("Started", Text(_when(incident.started_at))),
        ("Acknowledged", Text(ack)),
        ("Resolved", Text(_when(incident.resolved_at))),
    ]
    if incident.slack.channel:
        rows.append(("Slack", Text(f"{incident.slack.channel} · {incident.slack.ts}")))
    if incident.labels:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(incident.labels.items()))
        rows.append(("Labels", Text(labels)))
    for name, value in rows:
        grid.add_row(Text(name), value)
    return grid


def _rca(analysis: Analysis) -> Group:
    parts: list[RenderableType] = []
    for name in ("root_cause", "reasoning", "mitigation", "prevention", "recommendation"):
        parts.append(Text(name.replace("_", " ").capitalize(), style="bold"))
        parts.append(Text(getattr(analysis, name)))
    parts.append(
        Text(
            f"Confidence {analysis.confidence_score}% · {analysis.execution_status.value} · "
            f"{analysis.provider}{' ' + analysis.model if analysis.model else ''} · "
            f"{len(analysis.attempts)} attempt(s)",
            style="dim",
        )
    )
    if analysis.evidence:
        evidence = Table(header_style="bold", box=None, show_edge=False)
        for column in ("ref", "source", "evidence"):
            evidence.add_column(column, overflow="fold")
        for item in analysis.evidence:
            evidence.add_row(Text(item.ref), Text(item.source), Text(item.text))
        parts.append(evidence)
    return Group(*parts)


def _timeline(events: list[TimelineEventOut]) -> Table:
    table = Table(title="Timeline", header_style="bold", title_justify="left")
    for column in ("at", "type", "actor", "message"):
        table.add_column(column, overflow="fold")
    for event in events:
        table.add_row(
            Text(event.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")),
            Text(event.type),
            Text(event.actor),
            Text(event.message),
        )
    return table


def _status(status: IncidentStatus) -> Text:
    return Text(status.value, style=STATUS_STYLE.get(status, ""))


def _alerts(incident: IncidentOut) -> str:
    truncated = f" (+{incident.truncated_alerts} truncated)" if incident.truncated_alerts else ""
    return f"{incident.alert_count}{truncated}"


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"
