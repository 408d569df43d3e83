"""Investigation runs: which graph threads exist, who runs them, which need resuming.

Several replicas can share one PostgreSQL: each run has an `owner` (one process) that
heartbeats while it runs. A replica adopts only runs whose owner stopped heartbeating, so a
replica starting up never runs a graph another live replica is running.

Every function writes, so all take a blocking `Connection`: they run on the store writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from firebreak.store.incidents import record_event, utcnow
from firebreak.store.models import Incident, InvestigationRun, TimelineEvent
from firebreak.store.schemas import EventType


class RunStatus(StrEnum):
    RUNNING = "running"  # queued or in progress; adopted after its owner died
    AWAITING_APPROVAL = "awaiting_approval"  # paused at a remediation proposal
    DECIDING = "deciding"  # a human decided; the graph is being resumed with `decision`
    SUPERSEDED = "superseded"  # a newer run of the incident proposed; this one is never resumed
    DONE = "done"
    FAILED = "failed"


UNFINISHED = (RunStatus.RUNNING.value, RunStatus.DECIDING.value)


@dataclass(frozen=True)
class Run:
    thread_id: str
    incident_id: int
    status: RunStatus
    decision: dict[str, Any] | None


def create_run(
    conn: Connection,
    thread_id: str,
    incident_id: int,
    *,
    actor: str,
    reason: str,
    owner: str,
) -> None:
    now = utcnow()
    conn.execute(
        insert(InvestigationRun).values(
            thread_id=thread_id,
            incident_id=incident_id,
            status=RunStatus.RUNNING.value,
            actor=actor,
            reason=reason,
            started_at=now,
            owner=owner,
            heartbeat_at=now,
        )
    )


def set_status(conn: Connection, thread_id: str, status: RunStatus) -> None:
    finished = utcnow() if status in (RunStatus.DONE, RunStatus.FAILED) else None
    conn.execute(
        update(InvestigationRun)
        .where(InvestigationRun.thread_id == thread_id)
        .values(status=status.value, finished_at=finished)
    )


def run_of(conn: Connection, thread_id: str) -> Run | None:
    """The run `thread_id` names (a blocking read: `AsyncConnection.run_sync`)."""
    row = conn.execute(
        select(
            InvestigationRun.thread_id,
            InvestigationRun.incident_id,
            InvestigationRun.status,
            InvestigationRun.decision,
        ).where(InvestigationRun.thread_id == thread_id)
    ).first()
    return Run(row.thread_id, row.incident_id, RunStatus(row.status), row.decision) if row else None


def settle(
    conn: Connection,
    thread_id: str,
    status: RunStatus,
    *,
    incident_id: int,
    failure: tuple[str, str] | None = None,
) -> None:
    """How a drive of the run ended, with the `AI_ANALYSIS_FAILED` event when it failed
    (`failure`: actor, message), in one transaction: a failure is recorded once, together with
    the status that says so. No event for an incident deleted meanwhile."""
    set_status(conn, thread_id, status)
    if failure is None:
        return
    if conn.scalar(select(Incident.id).where(Incident.id == incident_id)) is not None:
        actor, message = failure
        record_event(conn, incident_id, EventType.AI_ANALYSIS_FAILED, actor, message)


def claim_decision(
    conn: Connection, thread_id: str, incident_id: int, decision: dict[str, Any], *, owner: str
) -> bool:
    """Record a human decision on the paused run `thread_id`, once: True for the winner of two
    concurrent clicks, False for the other, and for a run that no longer waits (decided, or
    superseded by a newer proposal). The run is named by the message clicked, never guessed:
    approving an older proposal must not approve the newest one."""
    claimed = conn.execute(
        update(InvestigationRun)
        .where(
            InvestigationRun.thread_id == thread_id,
            InvestigationRun.incident_id == incident_id,
            InvestigationRun.status == RunStatus.AWAITING_APPROVAL.value,
        )
        .values(
            status=RunStatus.DECIDING.value, decision=decision, owner=owner, heartbeat_at=utcnow()
        )
    )
    return claimed.rowcount == 1


def supersede_waiting(conn: Connection, incident_id: int, newer: str) -> list[str]:
    """Every other run of the incident still waiting for a decision is superseded by `newer`
    (a new proposal): its buttons then answer that they are stale. The thread ids superseded."""
    rows = conn.execute(
        update(InvestigationRun)
        .where(
            InvestigationRun.incident_id == incident_id,
            InvestigationRun.thread_id != newer,
            InvestigationRun.status == RunStatus.AWAITING_APPROVAL.value,
        )
        .values(status=RunStatus.SUPERSEDED.value, finished_at=utcnow())
        .returning(InvestigationRun.thread_id)
    )
    return [row.thread_id for row in rows]


def retry_after_outage(conn: Connection, thread_id: str, *, owner: str) -> tuple[Run, int] | None:
    """Count one more resume of a run the store failed under, and take it (again) for `owner`;
    the run and its count of such resumes, or None when the run is no longer unfinished (or
    gone with its incident). Being a write, it also shows that the store takes writes again."""
    row = conn.execute(
        update(InvestigationRun)
        .where(InvestigationRun.thread_id == thread_id, InvestigationRun.status.in_(UNFINISHED))
        .values(
            store_retries=InvestigationRun.store_retries + 1, owner=owner, heartbeat_at=utcnow()
        )
        .returning(
            InvestigationRun.incident_id,
            InvestigationRun.status,
            InvestigationRun.decision,
            InvestigationRun.store_retries,
        )
    ).first()
    if row is None:
        return None
    return Run(thread_id, row.incident_id, RunStatus(row.status), row.decision), row.store_retries


def heartbeat(conn: Connection, owner: str) -> None:
    conn.execute(
        update(InvestigationRun)
        .where(InvestigationRun.owner == owner, InvestigationRun.status.in_(UNFINISHED))
        .values(heartbeat_at=utcnow())
    )


def release(conn: Connection, owner: str) -> None:
    """A clean shutdown hands its unfinished runs over at once (no wait for staleness)."""
    conn.execute(
        update(InvestigationRun)
        .where(InvestigationRun.owner == owner, InvestigationRun.status.in_(UNFINISHED))
        .values(owner=None, heartbeat_at=None)
    )


def adopt_runs(conn: Connection, owner: str, *, stale_before: datetime | None) -> list[Run]:
    """Take over unfinished runs whose owner stopped heartbeating before `stale_before` (all
    unfinished runs when None: a single-process store after a restart). One conditional UPDATE,
    so two replicas never adopt the same run."""
    alive = or_(InvestigationRun.owner.is_(None), InvestigationRun.owner != owner)
    if stale_before is not None:
        alive = alive & or_(
            InvestigationRun.heartbeat_at.is_(None), InvestigationRun.heartbeat_at < stale_before
        )
    rows = conn.execute(
        update(InvestigationRun)
        .where(InvestigationRun.status.in_(UNFINISHED), alive)
        .values(owner=owner, heartbeat_at=utcnow())
        .returning(
            InvestigationRun.thread_id,
            InvestigationRun.incident_id,
            InvestigationRun.status,
            InvestigationRun.decision,
        )
    )
    return [Run(r.thread_id, r.incident_id, RunStatus(r.status), r.decision) for r in rows]


def proposals_shown(conn: Connection, incident_id: int, thread_ids: list[str]) -> dict[str, Any]:
    """The proposal each of these runs showed for approval (the data of its
    REMEDIATION_PROPOSED event), by thread id; runs proposed before events named their run are
    left out."""
    if not thread_ids:
        return {}
    rows = conn.execute(
        select(TimelineEvent.data).where(
            TimelineEvent.incident_id == incident_id,
            TimelineEvent.type == EventType.REMEDIATION_PROPOSED.value,
        )
    )
    wanted = set(thread_ids)
    return {
        data["approval"]: data
        for (data,) in rows
        if isinstance(data, dict) and data.get("approval") in wanted
    }
