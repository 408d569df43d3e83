"""Slack delivery state: the durable outbox, post intents, and leases (Slack deliveries are
de-duplicated in store/dedup.py).

Every function takes a connection and the caller owns the transaction. Reads take an
`AsyncConnection`; writes take a blocking `Connection` and run on the store writer (group
commit, store/writer.py), the process's only writer. All of it works the same on SQLite and
PostgreSQL (conditional UPDATEs and ``ON CONFLICT DO NOTHING``), so several replicas sharing
one PostgreSQL agree on what was already handled and on who drains the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.store.db import conflict_insert
from firebreak.store.incidents import CARD, utcnow
from firebreak.store.models import (
    Incident,
    SlackLease,
    SlackMessage,
    SlackOutbox,
    SlackPostIntent,
)

PENDING = "pending"
DONE = "done"
FAILED = "failed"

KIND_CARD = "card"
KIND_THREAD = "thread"
KIND_DM = "dm"
KIND_MESSAGE = "message"
KIND_FILE = "file"  # a file shared into an incident's thread (a long postmortem draft)


@dataclass(frozen=True)
class OutboxItem:
    id: int
    lane: str
    incident_id: int | None
    kind: str
    purpose: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: datetime


def incident_lane(incident_id: int) -> str:
    return f"incident:{incident_id}"


# ---------------------------------------------------------------------- outbox


def enqueue(
    conn: Connection,
    *,
    lane: str,
    kind: str,
    purpose: str,
    payload: dict[str, Any] | None = None,
    incident_id: int | None = None,
) -> int:
    now = utcnow()
    item_id = conn.scalar(
        insert(SlackOutbox)
        .values(
            lane=lane,
            incident_id=incident_id,
            kind=kind,
            purpose=purpose,
            payload=payload or {},
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .returning(SlackOutbox.id)
    )
    assert item_id is not None
    return item_id


async def pending(conn: AsyncConnection, limit: int = 500) -> list[OutboxItem]:
    """Undelivered items, oldest first (due or not: a lane waits for its oldest item)."""
    rows = await conn.execute(
        select(SlackOutbox)
        .where(SlackOutbox.status == PENDING)
        .order_by(SlackOutbox.id)
        .limit(limit)
    )
    return [
        OutboxItem(
            id=r.id,
            lane=r.lane,
            incident_id=r.incident_id,
            kind=r.kind,
            purpose=r.purpose,
            payload=r.payload,
            attempts=r.attempts,
            next_attempt_at=r.next_attempt_at,
        )
        for r in rows
    ]


async def next_due(conn: AsyncConnection) -> datetime | None:
    return await conn.scalar(
        select(SlackOutbox.next_attempt_at)
        .where(SlackOutbox.status == PENDING)
        .order_by(SlackOutbox.next_attempt_at)
        .limit(1)
    )


async def count_pending(conn: AsyncConnection) -> int:
    found = await conn.scalar(
        select(func.count()).select_from(SlackOutbox).where(SlackOutbox.status == PENDING)
    )
    return int(found or 0)


def mark_done(conn: Connection, ids: list[int]) -> None:
    if ids:
        conn.execute(
            update(SlackOutbox)
            .where(SlackOutbox.id.in_(ids), SlackOutbox.status == PENDING)
            .values(status=DONE, done_at=utcnow())
        )


def complete_cards(conn: Connection, incident_id: int, up_to_id: int) -> None:
    """A card delivery renders the current state, so it also answers older card requests."""
    conn.execute(
        update(SlackOutbox)
        .where(
            SlackOutbox.incident_id == incident_id,
            SlackOutbox.kind == KIND_CARD,
            SlackOutbox.status == PENDING,
            SlackOutbox.id <= up_to_id,
        )
        .values(status=DONE, done_at=utcnow())
    )


def mark_retry(
    conn: Connection, item_id: int, *, attempts: int, next_at: datetime, error: str
) -> None:
    conn.execute(
        update(SlackOutbox)
        .where(SlackOutbox.id == item_id)
        .values(attempts=attempts, next_attempt_at=next_at, last_error=error[:2000])
    )


def mark_failed(conn: Connection, item_id: int, *, attempts: int, error: str) -> None:
    conn.execute(
        update(SlackOutbox)
        .where(SlackOutbox.id == item_id)
        .values(status=FAILED, attempts=attempts, last_error=error[:2000], done_at=utcnow())
    )


def bring_forward(conn: Connection) -> None:
    """Everything waiting out a backoff becomes due now (Slack answered again)."""
    now = utcnow()
    conn.execute(
        update(SlackOutbox)
        .where(SlackOutbox.status == PENDING, SlackOutbox.next_attempt_at > now)
        .values(next_attempt_at=now)
    )


def prune_outbox(conn: Connection, older_than: timedelta) -> None:
    conn.execute(
        delete(SlackOutbox).where(
            SlackOutbox.status != PENDING, SlackOutbox.done_at < utcnow() - older_than
        )
    )


async def card_ref(conn: AsyncConnection, incident_id: int) -> tuple[str, str] | None:
    row = (
        await conn.execute(
            select(SlackMessage.channel, SlackMessage.ts)
            .where(SlackMessage.incident_id == incident_id, SlackMessage.purpose == CARD)
            .order_by(SlackMessage.id)
            .limit(1)
        )
    ).first()
    return (row.channel, row.ts) if row else None


async def incidents_without_card(conn: AsyncConnection, since: datetime) -> list[int]:
    """Incidents that should have a card and neither have one nor wait for one: open ones, and
    any opened since ``since``."""
    has_card = exists().where(SlackMessage.incident_id == Incident.id, SlackMessage.purpose == CARD)
    waiting = exists().where(
        SlackOutbox.incident_id == Incident.id,
        SlackOutbox.kind == KIND_CARD,
        SlackOutbox.status == PENDING,
    )
    rows = await conn.execute(
        select(Incident.id)
        .where(
            or_(Incident.status != "resolved", Incident.created_at >= since),
            ~has_card,
            ~waiting,
        )
        .order_by(Incident.id)
    )
    return [row.id for row in rows]


async def open_incidents_with_card(conn: AsyncConnection) -> list[int]:
    has_card = exists().where(SlackMessage.incident_id == Incident.id, SlackMessage.purpose == CARD)
    rows = await conn.execute(
        select(Incident.id).where(Incident.status != "resolved", has_card).order_by(Incident.id)
    )
    return [row.id for row in rows]


# ---------------------------------------------------------------------- post intents


@dataclass(frozen=True)
class PostIntent:
    """A post about to be made (or maybe made): where, with which key, since when; `earlier`
    when it was written by an earlier attempt, which may have posted."""

    channel: str
    key: str
    started_at: datetime
    earlier: bool


def intend_post(
    conn: Connection, incident_id: int, purpose: str, *, channel: str, key: str
) -> PostIntent:
    """The incident's intent for `purpose`: written now (channel and key as given), or the one
    an earlier attempt wrote (its channel and key win)."""
    created = conn.execute(
        conflict_insert(conn, SlackPostIntent)
        .values(
            incident_id=incident_id,
            purpose=purpose,
            channel=channel,
            key=key,
            started_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["incident_id", "purpose"])
    )
    row = conn.execute(
        select(SlackPostIntent.channel, SlackPostIntent.key, SlackPostIntent.started_at).where(
            SlackPostIntent.incident_id == incident_id, SlackPostIntent.purpose == purpose
        )
    ).one()
    return PostIntent(row.channel, row.key, row.started_at, earlier=created.rowcount != 1)


def forget_intent(conn: Connection, incident_id: int, purpose: str) -> None:
    """The post is recorded (or nothing is left to post): no attempt needs to look for it."""
    conn.execute(
        delete(SlackPostIntent).where(
            SlackPostIntent.incident_id == incident_id, SlackPostIntent.purpose == purpose
        )
    )


# ---------------------------------------------------------------------- leases


def acquire_lease(conn: Connection, name: str, owner: str, ttl: timedelta) -> bool:
    """Take or renew ``name`` for ``ttl``; False while another owner holds it unexpired."""
    now = utcnow()
    renewed = conn.execute(
        update(SlackLease)
        .where(SlackLease.name == name, or_(SlackLease.owner == owner, SlackLease.expires_at < now))
        .values(owner=owner, expires_at=now + ttl)
    )
    if renewed.rowcount == 1:
        return True
    created = conn.execute(
        conflict_insert(conn, SlackLease)
        .values(name=name, owner=owner, expires_at=now + ttl)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return created.rowcount == 1


def release_lease(conn: Connection, name: str, owner: str) -> None:
    conn.execute(delete(SlackLease).where(and_(SlackLease.name == name, SlackLease.owner == owner)))
