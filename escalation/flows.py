"""Escalation ladders and reminders: who gets paged, when, and exactly once.

The ladder of an incident lives in the `escalations` row (store/escalations.py): the policy
snapshotted when the incident opened, the last level paged, the cycle, `next_at` (None =
stopped) and `step`, the exactly-once token. A step is one transaction: a conditional UPDATE
on `step` (and, for the timer, `next_at IS NOT NULL` and the incident still triggered), the
incident's `escalation_level` and the ESCALATED event. Only the caller whose UPDATE changed the
row pages Slack, after the commit: a duplicate job, a job left over from before an ack, or a
second replica firing the same step changes nothing and says nothing. (A crash between the
commit and the notifier call loses that page's Slack message but never doubles it; the
notifier itself records it durably once called.)

The timer: the scheduler keeps one job per 0.1 s tick in which some ladder's `next_at` falls
(the `esc` job kind, scheduler/core.py); the job fires every step due by then (`fire_due`), so
10,000 steps due within seconds of each other commit in a few writer batches instead of 10,000
jobs each committing its own removal.

Acknowledge and resolve, by a person or by Alertmanager, stop the ladder in their own
transaction (`store.escalations.stop_ladder`: `next_at` cleared, `step` bumped), so any job
still queued for the old step is a no-op.

Reminders: an acknowledged, unresolved incident gets one every `escalation.reminder_interval_s`
counted from the later of the acknowledgement and the previous reminder; `incident_reminders`
holds the count (`sent`), the reminders' exactly-once token.

Schedules: a level's `schedule:NAME` targets are resolved (`resolve_targets`, from
oncall/schedules.py) inside the step's transaction, at the moment it fires, so a shift that
changed between two levels pages the person on call now. The ESCALATED event keeps what was
configured (`notify`), who was paged (`targets`), why (`reasons`), each schedule's person
(`schedules`) and the schedules that found nobody (`unstaffed`), which the thread is told.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.escalation.config import EscalationConfig, EscalationPolicy
from firebreak.escalation.due import (
    LADDER,
    REMINDER,
    pending_ladders,
    pending_reminders,
    reminder_due,
)
from firebreak.incidents.events import Change, EventBus, IncidentEvent
from firebreak.incidents.notices import Paged, Reminder, YouArePaged
from firebreak.incidents.ports import Escalation, Notifier
from firebreak.oncall.schedules import PageTarget
from firebreak.scheduler.core import CatchUp, Due, JobKind, Scheduling
from firebreak.store import escalations
from firebreak.store.escalations import ACKNOWLEDGED, RESOLVED, TRIGGERED, Ladder
from firebreak.store.incidents import record_event, utcnow
from firebreak.store.schemas import EventType
from firebreak.store.writer import Writer

log = structlog.get_logger(__name__)

ACTOR = "firebreak"
NO_POLICY: dict[str, Any] = {"name": None, "match": {}, "levels": [], "repeat": 0}
_USER_PREFIXES = ("U", "W")
DUE_BATCH = 1000  # steps fired per look at the due ladders (they commit in writer batches)
TICK_S = 0.1  # ladder steps fire on these ticks: at most this late, one job per tick

ResolveTargets = Callable[[Iterable[str], datetime], list[PageTarget]]
"""A level's `notify` with each `schedule:NAME` replaced by whoever is on call at that instant
(`oncall.schedules.OnCall.resolve_targets`)."""


def match_policy(
    policies: list[EscalationPolicy], labels: dict[str, str], *, severity: str, service: str
) -> EscalationPolicy | None:
    """The first policy whose `match` labels all equal the incident's (severity and service
    count as labels when the alert labels lack them)."""
    facts = {"severity": severity, "service": service, **labels}
    for policy in policies:
        if all(facts.get(key) == value for key, value in policy.match.items()):
            return policy
    return None


def next_position(policy: dict[str, Any], level: int, cycle: int) -> tuple[int, int] | None:
    """The (level, cycle) paged after (level, cycle); level 0 means nothing paged yet. None
    when the ladder, repeats included, is exhausted."""
    levels = len(policy.get("levels") or [])
    if levels == 0:
        return None
    if level < levels:
        return level + 1, cycle
    if cycle < int(policy.get("repeat") or 0):
        return 1, cycle + 1
    return None


def _targets(policy: dict[str, Any], level: int) -> list[str]:
    return list(policy["levels"][level - 1]["notify"])


def _timeout(policy: dict[str, Any], level: int) -> float:
    return float(policy["levels"][level - 1]["timeout_s"])


@dataclass(frozen=True)
class Page:
    incident_id: int
    title: str
    level: int
    cycle: int
    targets: list[str]
    next_step: int
    next_at: datetime | None
    reasons: dict[str, str] = field(default_factory=dict)
    unstaffed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Resolved:
    """A level's targets as resolved when its step fires."""

    notify: list[str]
    pages: list[PageTarget]

    @property
    def targets(self) -> list[str]:
        return [page.target for page in self.pages if page.target is not None]

    @property
    def reasons(self) -> dict[str, str]:
        return {p.target: p.reason for p in self.pages if p.target is not None and p.reason}

    @property
    def unstaffed(self) -> list[str]:
        return [p.reason for p in self.pages if p.target is None and p.reason]

    @property
    def schedules(self) -> dict[str, str | None]:
        return {p.schedule: p.target for p in self.pages if p.schedule is not None}

    def describe(self) -> str:
        """`U1, U0ALICE (on call for payments-primary); nobody is on call for sre`."""
        reasons = self.reasons
        paged = ", ".join(t + (f" ({reasons[t]})" if t in reasons else "") for t in self.targets)
        return "; ".join(part for part in [paged, *self.unstaffed] if part) or "nobody"


@dataclass(kw_only=True, eq=False)
class EscalationService:
    """Implements `incidents.ports.Escalations`; its job kinds fire ladder steps (`fire_due`)
    and reminders (`fire_reminder`)."""

    engine: AsyncEngine
    writer: Writer
    bus: EventBus
    notifier: Notifier
    scheduler: Scheduling
    config: EscalationConfig
    resolve_targets: ResolveTargets
    due_batch: int = field(default=DUE_BATCH, init=False)
    _firing: bool = field(default=False, init=False, repr=False)
    _look_again: bool = field(default=False, init=False, repr=False)

    def job_kinds(self) -> list[JobKind]:
        """Ladder steps share tick jobs; reminders are one job each, run in bounded slots."""
        interval = self.config.reminder_interval_s
        return [
            JobKind(LADDER, lambda _tick, _: self.fire_due(), pending_ladders, TICK_S),
            JobKind(
                REMINDER,
                self.fire_reminder,
                partial(pending_reminders, interval_s=interval),
                limited=True,
            ),
        ]

    def catch_up(self) -> CatchUp:
        """Triggered incidents with no ladder (their OPENED was lost in a crash) start one."""
        return CatchUp(escalations.unstarted_incidents, self.start)

    # ------------------------------------------------------------------ public (ports)

    async def start(self, incident_id: int) -> None:
        """Snapshot the matching policy and page level 1 now (idempotent; a reopened incident
        whose ladder had stopped starts again)."""
        step = await self.writer.run(partial(self._start_ladder, incident_id=incident_id))
        if step is not None:
            log.info("escalation started", incident_id=incident_id)
            await self.fire_step(incident_id, step)

    async def escalate_now(self, incident_id: int, *, actor: str) -> Escalation:
        """Page the next level immediately."""
        for _ in range(3):
            outcome = await self.writer.run(
                partial(self._escalate, incident_id=incident_id, actor=actor)
            )
            if isinstance(outcome, Escalation):
                return outcome
            if outcome is None:
                continue  # lost a race with the timer, an ack or another click: look again
            await self._after_page(outcome)
            return Escalation("paged", outcome.level, tuple(outcome.targets))
        return Escalation("raced")

    # ------------------------------------------------------------------ jobs

    async def fire_due(self) -> int:
        """The timer (the scheduler's tick jobs): fire every ladder step due by now. A tick
        arriving while this runs makes it look once more instead of racing it."""
        if self._firing:
            self._look_again = True
            return 0
        self._firing = True
        fired = 0
        try:
            self._look_again = True
            while self._look_again:
                self._look_again = False
                async with self.engine.connect() as conn:
                    due = await conn.run_sync(escalations.due_steps, utcnow(), self.due_batch)
                pages = await asyncio.gather(*(self.fire_step(i, step) for i, step in due))
                fired += sum(pages)
                # A full batch may hide more due steps behind it. Every row of this batch has
                # been fired or stopped, so the next look reads rows not seen yet.
                self._look_again |= len(due) == self.due_batch
        finally:
            self._firing = False
        return fired

    async def fire_step(self, incident_id: int, step: int) -> bool:
        """The timer: page the next level if step `step` is still the pending one. Steps due
        together commit together (the store writer batches them)."""
        page = await self.writer.run(partial(self._timer_step, incident_id=incident_id, step=step))
        if page is None:
            return False
        await self._after_page(page)
        return True

    async def fire_reminder(self, incident_id: int, sent: int) -> bool:
        """Remind the thread that an acknowledged incident is still open (reminder sent+1)."""
        interval = self.config.reminder_interval_s
        outcome = await self.writer.run(
            partial(self._remind, incident_id=incident_id, sent=sent, interval=interval)
        )
        if isinstance(outcome, datetime):  # re-acknowledged since this job was made
            self.scheduler.schedule(Due(REMINDER, incident_id, sent, outcome))
            return False
        if outcome is None:
            return False
        ladder, now = outcome
        assert ladder.acknowledged_at is not None
        self.notifier.tell(incident_id, Reminder(
            acknowledged_by=ladder.acknowledged_by, acknowledged_at=ladder.acknowledged_at
        ))  # fmt: skip
        self.scheduler.schedule(
            Due(REMINDER, incident_id, sent + 1, now + timedelta(seconds=interval))
        )
        return True

    # ------------------------------------------------------------------ events

    def on_event(self, event: IncidentEvent) -> None:
        """Bus subscriber: only schedules work (never blocks)."""
        if event.change == Change.OPENED:
            self.scheduler.spawn(self.start(event.incident_id))
        elif self.scheduler.is_leader and event.actor not in (ACTOR, "alertmanager"):
            # a human may have acknowledged: schedule its reminder now (not after a sweep)
            self.scheduler.spawn(self.sync_reminder(event.incident_id))

    async def sync_reminder(self, incident_id: int) -> None:
        async with self.engine.connect() as conn:
            ladder = await conn.run_sync(escalations.ladder, incident_id)
            if ladder is None or ladder.status != ACKNOWLEDGED:
                return
            assert ladder.acknowledged_at is not None
            sent, last_at = await conn.run_sync(escalations.reminder_state, incident_id)
        due = reminder_due(ladder.acknowledged_at, last_at, self.config.reminder_interval_s)
        self.scheduler.schedule(Due(REMINDER, incident_id, sent, due))

    # ------------------------------------------------------------------ transactions
    # Run on the store writer (blocking connection, shared commit); no side effects here.

    def _start_ladder(self, conn: Connection, *, incident_id: int) -> int | None:
        """Create (or restart) the ladder; the step to fire now, or None."""
        ladder = escalations.ladder(conn, incident_id)
        if ladder is None or ladder.status != TRIGGERED:
            return None
        policy = self._snapshot(ladder)
        next_at = utcnow() if policy["levels"] else None
        if ladder.policy is None:
            if not escalations.create_ladder(conn, incident_id, policy, next_at):
                return None  # someone else created it
            step = 0
        else:
            if ladder.next_at is not None:
                return None  # running
            if not escalations.reopened_since_last_page(conn, incident_id):
                return None  # finished, or stopped, and not reopened since
            if not escalations.restart_ladder(conn, incident_id, ladder.step, policy, next_at):
                return None
            step = ladder.step + 1
        return step if next_at is not None else None

    def _escalate(
        self, conn: Connection, *, incident_id: int, actor: str
    ) -> Page | Escalation | None:
        """A manual escalation: the page, why there is none, or None (raced)."""
        ladder = escalations.ladder(conn, incident_id)
        if ladder is None:
            return Escalation("missing")
        if ladder.status == RESOLVED:
            return Escalation("resolved")
        policy = ladder.policy
        if policy is None:  # opened before the scheduler ran: snapshot it now
            policy = self._snapshot(ladder)
            if not escalations.create_ladder(conn, incident_id, policy, None):
                return None
        if not policy["levels"]:
            return Escalation("no_policy")
        position = next_position(policy, ladder.level, ladder.cycle)
        if position is None:
            return Escalation("last_level", ladder.level)
        return self._record_page(conn, ladder, policy, position, actor=actor, manual=True)

    def _timer_step(self, conn: Connection, *, incident_id: int, step: int) -> Page | None:
        ladder = escalations.ladder(conn, incident_id)
        if ladder is None or ladder.policy is None or ladder.step != step or ladder.next_at is None:
            return None
        if ladder.status != TRIGGERED:  # nobody stopped it (a row from an older build)
            escalations.stop_ladder(conn, incident_id)
            return None
        position = next_position(ladder.policy, ladder.level, ladder.cycle)
        if position is None:  # nothing left (cannot happen for rows we wrote): stop
            escalations.claim_step(
                conn,
                incident_id,
                step,
                level=ladder.level,
                cycle=ladder.cycle,
                next_at=None,
                scheduled=True,
            )
            return None
        return self._record_page(conn, ladder, ladder.policy, position, actor=ACTOR, manual=False)

    def _remind(
        self, conn: Connection, *, incident_id: int, sent: int, interval: float
    ) -> tuple[Ladder, datetime] | datetime | None:
        """Record reminder `sent + 1`: (ladder, now) when it is to be sent, the new due time
        when the incident was re-acknowledged since, None when there is nothing to do."""
        now = utcnow()
        ladder = escalations.ladder(conn, incident_id)
        if ladder is None or ladder.status != ACKNOWLEDGED:
            return None
        assert ladder.acknowledged_at is not None
        current, last_at = escalations.reminder_state(conn, incident_id)
        if current != sent:
            return None
        due = reminder_due(ladder.acknowledged_at, last_at, interval)
        if due > now + timedelta(seconds=1):
            return due
        if not escalations.claim_reminder(conn, incident_id, sent, now):
            return None
        record_event(
            conn,
            incident_id,
            EventType.REMINDER,
            ACTOR,
            f"Reminder {sent + 1}: acknowledged by {ladder.acknowledged_by or 'someone'} "
            "and not resolved yet",
            {"reminder": sent + 1, "acknowledged_by": ladder.acknowledged_by},
        )
        return ladder, now

    # ------------------------------------------------------------------ internals

    def _snapshot(self, ladder: Ladder) -> dict[str, Any]:
        policy = match_policy(
            self.config.policies, ladder.labels, severity=ladder.severity, service=ladder.service
        )
        return policy.model_dump(mode="json") if policy is not None else dict(NO_POLICY)

    def _record_page(
        self,
        conn: Connection,
        ladder: Ladder,
        policy: dict[str, Any],
        position: tuple[int, int],
        *,
        actor: str,
        manual: bool,
    ) -> Page | None:
        now = utcnow()
        step = ladder.step
        level, cycle = position
        notify = _targets(policy, level)
        resolved = Resolved(notify, self.resolve_targets(notify, now))
        targets = resolved.targets
        automatic = ladder.status == TRIGGERED  # an acked incident gets no timer
        following = next_position(policy, level, cycle)
        next_at = (
            now + timedelta(seconds=_timeout(policy, level)) if following and automatic else None
        )
        claimed = escalations.claim_step(
            conn,
            ladder.incident_id,
            step,
            level=level,
            cycle=cycle,
            next_at=next_at,
            scheduled=not manual,
        )
        if not claimed:
            return None
        escalations.set_incident_level(conn, ladder.incident_id, level, now)
        message = f"Escalation level {level} paged: {resolved.describe()}"
        if cycle:
            message += f" (repeat {cycle})"
        if manual:
            message += f" — escalated by {actor}"
        elif level > 1 or cycle:
            message += " — not acknowledged in time"
        record_event(
            conn,
            ladder.incident_id,
            EventType.ESCALATED,
            actor,
            message,
            {
                "level": level,
                "cycle": cycle,
                "targets": targets,
                "notify": notify,
                "reasons": resolved.reasons,
                "schedules": resolved.schedules,
                "unstaffed": resolved.unstaffed,
                "policy": policy.get("name"),
                "levels": len(policy.get("levels") or []),
                "manual": manual,
                "due": ladder.next_at.isoformat() if ladder.next_at and not manual else None,
                "next_at": next_at.isoformat() if next_at else None,
            },
        )
        return Page(
            ladder.incident_id,
            ladder.title,
            level,
            cycle,
            targets,
            step + 1,
            next_at,
            resolved.reasons,
            resolved.unstaffed,
        )

    async def _after_page(self, page: Page) -> None:
        log.info("incident escalated", incident_id=page.incident_id, level=page.level)
        self.notifier.tell(
            page.incident_id,
            Paged(
                level=page.level,
                targets=page.targets,
                reasons=page.reasons,
                unstaffed=page.unstaffed,
            ),
        )
        for target in page.targets:
            if target.startswith(_USER_PREFIXES):
                self.notifier.tell_user(
                    target,
                    YouArePaged(
                        incident_id=page.incident_id,
                        level=page.level,
                        title=page.title,
                        reason=page.reasons.get(target, ""),
                    ),
                )
        self.bus.publish(IncidentEvent(page.incident_id, Change.UPDATED, ACTOR))
        if page.next_at is not None:
            self.scheduler.schedule(Due(LADDER, page.incident_id, page.next_step, page.next_at))
