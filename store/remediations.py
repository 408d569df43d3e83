"""Remediation run queries (`remediation_runs`, the source of truth of their deadlines).

Every state change is a conditional UPDATE on the run's exactly-once token (`step` and
`phase`): it changes the row only if nobody did that step before. The caller writes the
timeline event in the same transaction (they run on the store writer) and does the step's side
effects (running the action, Slack) only when the UPDATE changed the row.

`record_exit` is written by the action's supervisor process (remediation/supervisor.py), which
outlives Firebreak when Firebreak dies mid-run: the outcome goes to the run's row while the run
is still `executing`, and its deadline moves to now, so whichever process is the scheduler then
(this one after a restart, or another replica) finishes the run with that outcome at its next
reconciliation instead of declaring it unknown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from firebreak.store.models import Incident, RemediationRun

# run phases
SCHEDULED = "scheduled"
EXECUTING = "executing"
VERIFY = "verify"
DONE = "done"


def create_run(conn: Connection, **values: Any) -> int:
    run_id = conn.scalar(insert(RemediationRun).values(**values).returning(RemediationRun.id))
    assert run_id is not None
    return int(run_id)


def run_for_approval(conn: Connection, approval_key: str) -> int | None:
    return conn.scalar(select(RemediationRun.id).where(RemediationRun.approval_key == approval_key))


def get_run(conn: Connection, run_id: int) -> Any:
    """The run joined with its incident's status (None: no such run)."""
    return conn.execute(
        select(*RemediationRun.__table__.c, Incident.status.label("incident_status"))
        .join(Incident, Incident.id == RemediationRun.incident_id)
        .where(RemediationRun.id == run_id)
    ).first()


def advance_run(
    conn: Connection,
    run_id: int,
    step: int,
    phase: str,
    *,
    to_phase: str,
    next_at: datetime | None,
    now: datetime,
    **values: Any,
) -> bool:
    """Move run `run_id` from (step, phase) to `to_phase`; True only for the one that did."""
    result = conn.execute(
        update(RemediationRun)
        .where(
            RemediationRun.id == run_id, RemediationRun.step == step, RemediationRun.phase == phase
        )
        .values(phase=to_phase, next_at=next_at, step=step + 1, updated_at=now, **values)
    )
    return result.rowcount == 1


def waiting_runs(conn: Connection) -> list[tuple[int, int, datetime]]:
    """(run, step, next_at) of every run with a deadline."""
    rows = conn.execute(
        select(RemediationRun.id, RemediationRun.step, RemediationRun.next_at).where(
            RemediationRun.next_at.is_not(None)
        )
    )
    return [(r.id, r.step, r.next_at) for r in rows]


def runs_of(conn: Connection, incident_id: int) -> list[Any]:
    """Every run of an incident, oldest first (the incident page, the postmortem)."""
    return list(
        conn.execute(
            select(RemediationRun)
            .where(RemediationRun.incident_id == incident_id)
            .order_by(RemediationRun.id)
        )
    )


def record_exit(
    conn: Connection,
    run_id: int,
    step: int,
    phase: str,
    *,
    ok: bool,
    output: str,
    now: datetime,
) -> bool:
    """Keep the action's outcome on the run claimed at (`step`, `phase`), once; False when the
    run has moved on (Firebreak recorded it first) or already holds an outcome."""
    result = conn.execute(
        update(RemediationRun)
        .where(
            RemediationRun.id == run_id,
            RemediationRun.step == step,
            RemediationRun.phase == phase,
            RemediationRun.ok.is_(None),
        )
        .values(ok=ok, output=output, next_at=now, updated_at=now)
    )
    return result.rowcount == 1
