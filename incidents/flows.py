"""The incident actions people take, from any surface: Slack buttons, `/incident`, the write
API, the command line, the incident page. Each returns an `Outcome` (what happened, as data);
the surface words the answer. An action taken outside Slack names its surface (`via`): the
incident's Slack thread is then told who did what (`ActedElsewhere`), so the thread shows
every action and note wherever it was taken; Slack's own surface passes none, as Slack shows
its own actions already, and its notes (questions in the thread) are said there as answers.

State changes are conditional updates with their timeline event in one writer transaction
(incidents/transitions.py), so a second click, a retry or another replica changes nothing;
the bus then tells the card, the ladder and the other components about it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any, Literal

import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.incidents import alert_text, transitions
from firebreak.incidents.config import CorrelationConfig, IngestConfig
from firebreak.incidents.events import Change, EventBus, IncidentEvent
from firebreak.incidents.ingest import ALERTMANAGER, IngestOutcome, ingest, ingest_many
from firebreak.incidents.notices import ActedElsewhere, Surface
from firebreak.incidents.ports import Escalation, Escalations, Investigations, Notifier
from firebreak.store import incidents, memory
from firebreak.store.incidents import record_event, utcnow
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.store.schemas import EventType, IncidentStatus
from firebreak.store.writer import Batched, Writer
from firebreak.tools.redact import Redactor
from firebreak.tools.text import cut

log = structlog.get_logger(__name__)

MAX_NOTE = 4000
# Ingestion is "busy" for BUSY_HOLD_S after this many notifications were being stored at once:
# Alertmanager sends one notification per group and interval; a storm brings dozens at once.
BUSY_BACKLOG = 8
BUSY_HOLD_S = 2.0


class Result(StrEnum):
    DONE = "done"
    UNCHANGED = "unchanged"  # already so: nothing changed
    MISSING = "missing"  # no such incident
    REFUSED = "refused"  # not possible now (a resolved incident cannot be escalated...)


@dataclass(frozen=True)
class Outcome:
    result: Result
    incident_id: int
    status: IncidentStatus | None = None
    acknowledged_by: str | None = None
    escalation: Escalation | None = None

    @property
    def changed(self) -> bool:
        return self.result is Result.DONE


class AlertIntake:
    """Alertmanager notifications in: stored (returns once committed), then announced on the
    bus, which starts cards, investigations and ladders, never inside the request."""

    def __init__(
        self,
        *,
        writer: Writer,
        bus: EventBus,
        config: IngestConfig,
        opened: Counter,
        resolved: Counter,
        correlation: CorrelationConfig | None = None,
        time_to_resolve: Histogram | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.bus = bus
        self.redactor = redactor or Redactor()
        self.config = config
        self.opened = opened
        self.resolved = resolved
        self.correlation = correlation
        self.time_to_resolve = time_to_resolve
        # Notifications arriving while a batch is written go in the next, applied set-wise.
        self._batches = Batched(writer, self._apply_many, self._apply_one)
        self._busy_until = 0.0  # monotonic time until which ingestion counts as busy

    @property
    def busy(self) -> bool:
        """A storm is being taken in (BUSY_BACKLOG notifications or more were being stored at
        once within the last BUSY_HOLD_S): background work (investigations, Slack deliveries)
        should let ingestion go first."""
        return time.monotonic() < self._busy_until

    async def ingest(self, payload: AlertmanagerPayload) -> IngestOutcome:
        """Store the notification, its text scrubbed first (incidents/alert_text.py): off the
        event loop when there is much of it."""
        if alert_text.needs_thread(payload):
            payload = await asyncio.to_thread(alert_text.scrub_payload, payload, self.redactor)
        else:
            payload = alert_text.scrub_payload(payload, self.redactor)
        if self._batches.pending >= BUSY_BACKLOG:
            self._busy_until = time.monotonic() + BUSY_HOLD_S
        outcome = await self._batches.run(payload)
        if outcome.incident_id is not None:
            self._announce(outcome.incident_id, outcome)
        return outcome

    def _apply_many(
        self, conn: Connection, payloads: list[AlertmanagerPayload]
    ) -> list[IngestOutcome]:
        return ingest_many(conn, payloads, now=utcnow(), **self._rules())

    def _apply_one(self, conn: Connection, payload: AlertmanagerPayload) -> IngestOutcome:
        return ingest(conn, payload, now=utcnow(), **self._rules())

    def _rules(self) -> dict[str, Any]:
        return {
            "reopen_window_s": self.config.reopen_window_s,
            "correlation": self.correlation,
            "shown": partial(alert_text.shown_text, redactor=self.redactor),
        }

    def _announce(self, incident_id: int, outcome: IngestOutcome) -> None:
        if outcome.opened:
            self.opened.inc()
            log.info("incident opened", incident_id=incident_id, reopened=outcome.reopened)
            self.bus.publish(IncidentEvent(incident_id, Change.OPENED, ALERTMANAGER))
        if outcome.joined:
            log.info("correlated group joined an incident", incident_id=incident_id)
        if outcome.resolved:
            self.resolved.inc()
            if self.time_to_resolve is not None and outcome.resolved_after_s is not None:
                self.time_to_resolve.observe(outcome.resolved_after_s)
            log.info("incident resolved", incident_id=incident_id, actor=ALERTMANAGER)
            self.bus.publish(IncidentEvent(incident_id, Change.RESOLVED, ALERTMANAGER))
        elif not outcome.opened and outcome.alerts_written:
            self.bus.publish(IncidentEvent(incident_id, Change.ALERTS, ALERTMANAGER))
        for other in outcome.correlated:  # their cards now name this one too
            self.bus.publish(IncidentEvent(other, Change.ALERTS, ALERTMANAGER))


class IncidentOps:
    """Acknowledge, resolve, escalate, re-investigate, declare, notes and questions."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        writer: Writer,
        bus: EventBus,
        escalations: Escalations,
        investigations: Investigations,
        time_to_acknowledge: Histogram | None = None,
        time_to_resolve: Histogram | None = None,
        redactor: Redactor | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.engine = engine
        self.redactor = redactor or Redactor()
        self.writer = writer
        self.bus = bus
        self.notifier = notifier  # tells the thread of actions taken outside Slack
        self.escalations = escalations
        self.investigations = investigations
        self.time_to_acknowledge = time_to_acknowledge
        self.time_to_resolve = time_to_resolve

    async def acknowledge(
        self, incident_id: int, actor: str, *, via: Surface | None = None
    ) -> Outcome:
        done = await self.writer.run(
            partial(transitions.acknowledge, incident_id=incident_id, actor=actor)
        )
        if done.changed:
            await self._observe(incident_id, self.time_to_acknowledge, resolved=False)
        outcome = self._after(incident_id, done, Change.UPDATED, actor, "acknowledged")
        return self._told(outcome, "acknowledged", actor, via)

    async def resolve(self, incident_id: int, actor: str) -> Outcome:
        """From any surface: the resolution's own thread reply names who resolved it."""
        done = await self.writer.run(
            partial(transitions.resolve, incident_id=incident_id, actor=actor)
        )
        if done.changed:
            await self._observe(incident_id, self.time_to_resolve, resolved=True)
        return self._after(incident_id, done, Change.RESOLVED, actor, "resolved")

    async def _observe(
        self, incident_id: int, histogram: Histogram | None, *, resolved: bool
    ) -> None:
        """Time from opening to this acknowledgement or resolve, into its histogram."""
        if histogram is None:
            return
        async with self.engine.connect() as conn:
            took = await memory.durations(conn, incident_id)
        seconds = took.resolve_s if resolved else took.acknowledge_s
        if seconds is not None:
            histogram.observe(seconds)

    async def escalate(
        self, incident_id: int, actor: str, *, via: Surface | None = None
    ) -> Outcome:
        async with self.engine.connect() as conn:
            incident = await incidents.get_incident(conn, incident_id, with_alerts=False)
        if incident is None:
            return Outcome(Result.MISSING, incident_id)
        if incident.status == IncidentStatus.RESOLVED:
            return Outcome(Result.REFUSED, incident_id, escalation=Escalation("resolved"))
        escalation = await self.escalations.escalate_now(incident_id, actor=actor)
        result = {
            "paged": Result.DONE,
            "missing": Result.MISSING,
            "raced": Result.UNCHANGED,
        }.get(escalation.result, Result.REFUSED)
        return self._told(
            Outcome(result, incident_id, escalation=escalation), "escalated", actor, via
        )

    async def investigate(self, incident_id: int, actor: str) -> Outcome:
        if not await self._exists(incident_id):
            return Outcome(Result.MISSING, incident_id)
        started = self.investigations.request(
            incident_id, actor=actor, reason=f"re-investigation requested by {actor}"
        )
        return Outcome(Result.DONE if started else Result.UNCHANGED, incident_id)

    def clean(self, text: str, limit: int = MAX_NOTE) -> str:
        """What people typed, as it may be stored and shown: cut to `limit` (marked), then
        scrubbed. The one pass for text from Slack, the API and the CLI."""
        return self.redactor.redact(cut(text, limit))

    async def declare(self, title: str, actor: str) -> int:
        """A declared incident; `title` is what `clean` gave (not scrubbed again)."""
        incident_id = await self.writer.run(partial(transitions.declare, title=title, actor=actor))
        log.info("incident declared", incident_id=incident_id, actor=actor)
        self.bus.publish(IncidentEvent(incident_id, Change.OPENED, actor))
        return incident_id

    async def add_note(
        self,
        incident_id: int,
        actor: str,
        text: str,
        data: dict[str, Any] | None = None,
        *,
        via: Surface | None = None,
    ) -> Outcome:
        """A note, its text scrubbed on the way in (`clean`)."""
        scrubbed = self.redactor.redact_value(data) if data else data
        text = self.clean(text)
        outcome = await self._note(incident_id, actor, text, scrubbed)
        return self._told(outcome, "note", actor, via, text[:MAX_NOTE])

    async def _note(
        self, incident_id: int, actor: str, text: str, data: dict[str, Any] | None = None
    ) -> Outcome:
        if not await self._exists(incident_id):
            return Outcome(Result.MISSING, incident_id)
        await self.writer.run(
            partial(
                record_event,
                incident_id=incident_id,
                kind=EventType.NOTE,
                actor=actor,
                message=text[:MAX_NOTE],
                data=data,
            )
        )
        return Outcome(Result.DONE, incident_id)

    async def ask(self, incident_id: int, question: str, actor: str) -> str:
        """Record the question, get the answer, record it: both NOTE events by the asker.
        `question` is what `clean` gave: it is not scrubbed again; the answer was written from
        scrubbed evidence and is scrubbed by the investigation that wrote it."""
        question = question[:MAX_NOTE]
        await self._note(
            incident_id, actor, f"Question: {question}", {"kind": "question", "question": question}
        )
        try:
            answer = await self.investigations.answer_question(incident_id, question, actor=actor)
        except Exception as exc:
            log.exception("answering a question failed", incident_id=incident_id)
            answer = f"I could not answer that ({type(exc).__name__})."
        await self._note(
            incident_id,
            actor,
            f"Answer: {answer}",
            {"kind": "answer", "question": question, "answered_by": "firebreak"},
        )
        return answer

    def _after(
        self,
        incident_id: int,
        done: transitions.Transition,
        change: Change,
        actor: str,
        what: str,
    ) -> Outcome:
        if done.status is None:
            return Outcome(Result.MISSING, incident_id)
        if done.changed:
            log.info(f"incident {what}", incident_id=incident_id, actor=actor)
            self.bus.publish(IncidentEvent(incident_id, change, actor))
        result = Result.DONE if done.changed else Result.UNCHANGED
        return Outcome(result, incident_id, done.status, done.acknowledged_by)

    def _told(
        self,
        outcome: Outcome,
        action: Literal["acknowledged", "escalated", "note"],
        actor: str,
        via: Surface | None,
        text: str = "",
    ) -> Outcome:
        """Tell the thread of a change made outside Slack (`via`); see the module docstring."""
        if via is not None and outcome.changed and self.notifier is not None:
            notice = ActedElsewhere(action=action, actor=actor, via=via, text=text)
            self.notifier.tell(outcome.incident_id, notice)
        return outcome

    async def _exists(self, incident_id: int) -> bool:
        async with self.engine.connect() as conn:
            return await incidents.exists(conn, incident_id)
