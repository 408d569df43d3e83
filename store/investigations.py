"""Investigation runs: which graph threads exist, and which need resuming after a crash."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.store.incidents import utcnow
from firebreak.store.models import InvestigationRun


class RunStatus(StrEnum):
    RUNNING = "running"  # queued or in progress; resumed at start if found after a crash
    AWAITING_APPROVAL = "awaiting_approval"  # paused at a remediation proposal
    DECIDING = "deciding"  # a human decided; the graph is being resumed with `decision`
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Run:
    thread_id: str
    incident_id: int
    status: RunStatus
    decision: dict[str, Any] | None


async def create_run(
    conn: AsyncConnection, thread_id: str, incident_id: int, *, actor: str, reason: str
) -> None:
    await conn.execute(
        insert(InvestigationRun).values(
            thread_id=thread_id,
            incident_id=incident_id,
            status=RunStatus.RUNNING.value,
            actor=actor,
            reason=reason,
            started_at=utcnow(),
        )
    )


async def set_status(conn: AsyncConnection, thread_id: str, status: RunStatus) -> None:
    finished = utcnow() if status in (RunStatus.DONE, RunStatus.FAILED) else None
    await conn.execute(
        update(InvestigationRun)
        .where(InvestigationRun.thread_id == thread_id)
        .values(status=status.value, finished_at=finished)
    )


async def claim_decision(
    conn: AsyncConnection, incident_id: int, decision: dict[str, Any]
) -> str | None:
    """Record a human decision on the paused run, once: the thread id for the winner of two
    concurrent clicks, None for the other (and when nothing awaits a decision)."""
    thread_id = await conn.scalar(
        select(InvestigationRun.thread_id)
        .where(
            InvestigationRun.incident_id == incident_id,
            InvestigationRun.status == RunStatus.AWAITING_APPROVAL.value,
        )
        .order_by(InvestigationRun.started_at.desc())
        .limit(1)
    )
    if thread_id is None:
        return None
    claimed = await conn.execute(
        update(InvestigationRun)
        .where(
            InvestigationRun.thread_id == thread_id,
            InvestigationRun.status == RunStatus.AWAITING_APPROVAL.value,
        )
        .values(status=RunStatus.DECIDING.value, decision=decision)
    )
    return thread_id if claimed.rowcount == 1 else None


async def unfinished_runs(conn: AsyncConnection) -> list[Run]:
    """Runs a crash may have interrupted: running ones and decided-but-not-applied ones."""
    rows = await conn.execute(
        select(InvestigationRun).where(
            InvestigationRun.status.in_([RunStatus.RUNNING.value, RunStatus.DECIDING.value])
        )
    )
    return [Run(r.thread_id, r.incident_id, RunStatus(r.status), r.decision) for r in rows]
