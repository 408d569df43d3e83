"""How an approved action ended, written by its supervisor process (`remediation/supervisor.py`).

The supervisor outlives Firebreak when Firebreak dies mid-run, so the outcome is written to the
run's row while the run is still `executing`, and its deadline is moved to now: whichever
process is the scheduler then (this one after a restart, or another replica) finishes the run
with that outcome at its next reconciliation instead of declaring it unknown.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, update

from firebreak.store.models import RemediationRun


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
