"""Handoff greetings: at each shift change of a schedule with `notify_handoff: true`, the
incoming person gets a DM listing the open incidents whose (snapshotted) escalation policies
page that schedule.

A scheduler job kind (`hof`), not a timer of each process: only the elected scheduler fires
its jobs, so two replicas never both greet, and the jobs are reconciled from the schedules
like any other deadline. `pending` lists, for every such schedule, the handoffs from `GRACE`
ago to `LOOKAHEAD` ahead that were not greeted yet (key: the schedule's position in the
configuration, token: the handoff's epoch second, rounded up); `fire` claims the greeting in
the store's de-duplication table (`store.dedup`, kind `handoff`) and only the claimer sends it.
A handoff that fell while no scheduler ran is greeted late if within `GRACE`, else never.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import partial

import structlog
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.escalation.due import open_incidents_paging
from firebreak.incidents.notices import HandoffIncident, OnCallHandoff
from firebreak.incidents.ports import Notifier
from firebreak.oncall.config import SCHEDULE_PREFIX
from firebreak.oncall.schedules import OnCall
from firebreak.scheduler.core import Due, JobKind
from firebreak.store import dedup
from firebreak.store.incidents import utcnow
from firebreak.store.writer import Writer

log = structlog.get_logger(__name__)

HANDOFF = "hof"  # the scheduler's job kind
GRACE = timedelta(minutes=10)
LOOKAHEAD = timedelta(hours=1)
_SECOND = timedelta(seconds=1)


def _epoch(at: datetime) -> int:
    return math.ceil(at.timestamp())


class HandoffGreetings:
    """The `hof` job kind: one DM per handoff of each `notify_handoff` schedule."""

    def __init__(
        self, *, engine: AsyncEngine, writer: Writer, notifier: Notifier, oncall: OnCall
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.notifier = notifier
        self.oncall = oncall

    def job_kind(self) -> JobKind:
        return JobKind(HANDOFF, self.fire, self.pending)

    def pending(self, conn: Connection) -> list[Due]:
        """The handoffs to greet (reconciliation, in a worker thread)."""
        now = utcnow()
        names = self.oncall.names()
        wanted: list[tuple[str, Due]] = []
        for name in self.oncall.handoff_schedules():
            key = names.index(name)
            for shift in self.oncall.handoffs_between(name, now - GRACE, now + LOOKAHEAD):
                assert shift.since is not None  # a shift that begins in the window
                epoch = _epoch(shift.since)
                wanted.append((handoff_key(name, epoch), Due(HANDOFF, key, epoch, shift.since)))
        sent = dedup.claimed(conn, dedup.HANDOFF, [key for key, _ in wanted])
        return [due for key, due in wanted if key not in sent]

    async def fire(self, key: int, epoch: int) -> bool:
        """Greet whoever took over schedule number `key` at `epoch`; False when it is not a
        handoff (any more) or someone greeted them already."""
        names = self.oncall.names()
        name = names[key] if 0 <= key < len(names) else None
        if name is None or name not in self.oncall.handoff_schedules():
            return False
        at = datetime.fromtimestamp(epoch, UTC)
        shifts = self.oncall.handoffs_between(name, at - _SECOND, at)
        shift = shifts[-1] if shifts else None
        if shift is None or shift.user is None:
            return False
        claim = partial(dedup.claim, kind=dedup.HANDOFF, key=handoff_key(name, epoch))
        if not await self.writer.run(claim):
            return False
        async with self.engine.connect() as conn:
            found = await conn.run_sync(open_incidents_paging, SCHEDULE_PREFIX + name)
        log.info("on-call handoff", schedule=name, user=shift.user, incidents=len(found))
        self.notifier.tell_user(
            shift.user,
            OnCallHandoff(
                schedule=name,
                until=shift.until,
                incidents=[HandoffIncident(id=i, title=t, status=s) for i, t, s in found],
            ),
        )
        return True


def handoff_key(schedule: str, epoch: int) -> str:
    """What a handoff greeting is claimed by: the schedule and the instant of the handoff."""
    return f"{schedule}:{epoch}"
