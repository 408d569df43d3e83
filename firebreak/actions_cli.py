"""`firebreak ack|resolve|escalate ID` and `firebreak note ID TEXT`: act from a terminal.

The actions are the ones Slack's buttons and the write API run (`incidents.flows.IncidentOps`,
with the escalation component behind `escalate`), on the configured store, recorded on the
timeline as done by `--by`. What Slack must hear (the card's new state, the resolution reply,
the pages, and in the thread who acknowledged, escalated or noted what from here) is written to
the Slack outbox exactly as the server writes it; the drainer of a running `firebreak serve`
delivers it within `OutboxSettings.poll_s`, or the next one to start does. A ladder's next
step is the store's `next_at`, which the running server's scheduler sweeps up
(`escalation.sweep_interval_s`). `access.responders` is not asked: whoever can read the
configuration and reach the store can change it anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.exc import DBAPIError

from firebreak.bot.slack_outbox import recording_outbox
from firebreak.config import Config, Secrets
from firebreak.escalation.flows import EscalationService
from firebreak.incidents.events import EventBus
from firebreak.incidents.flows import IncidentOps, Outcome, Result
from firebreak.incidents.notices import Surface
from firebreak.incidents.ports import NoInvestigations
from firebreak.incidents_cli import StoreUnreadable, ensure_store
from firebreak.oncall.schedules import OnCall
from firebreak.scheduler.core import Due
from firebreak.store.db import create_engine, create_sync_engine, is_migrated
from firebreak.store.schemas import IncidentStatus
from firebreak.store.writer import Writer
from firebreak.tools.redact import Redactor

__all__ = ["ACTIONS", "Said", "act"]

ACTIONS = ("ack", "resolve", "escalate", "note")
CLI: Surface = "cli"  # the surface the Slack thread names for these actions (`ActedElsewhere`)


@dataclass(frozen=True)
class Said:
    """The one line printed, and the exit status: 0 done or already so, 1 not done."""

    code: int
    line: str


def act(
    config: Config, secrets: Secrets, action: str, incident_id: int, by: str, text: str = ""
) -> Said:
    """Run one action; a store that cannot be used is said like an unknown incident."""
    try:
        ensure_store(config)
        return asyncio.run(_act(config, secrets, action, incident_id, by, text))
    except StoreUnreadable as exc:
        return Said(1, str(exc))
    except (DBAPIError, OSError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        return Said(1, f"cannot use the store: {reason}")


async def _act(
    config: Config, secrets: Secrets, action: str, incident_id: int, by: str, text: str
) -> Said:
    async with incident_ops(config, secrets, schedules=action == "escalate") as ops:
        async with ops.engine.connect() as conn:
            if not await conn.run_sync(is_migrated):
                raise StoreUnreadable("the store is not migrated yet: run `firebreak db upgrade`")
        match action:
            case "ack":
                return acknowledged(await ops.acknowledge(incident_id, by, via=CLI), by)
            case "resolve":
                return resolved(await ops.resolve(incident_id, by), by)
            case "escalate":
                return escalated(await ops.escalate(incident_id, by, via=CLI))
            case _:
                return noted(await ops.add_note(incident_id, by, text, via=CLI), by)


@asynccontextmanager
async def incident_ops(
    config: Config, secrets: Secrets, *, schedules: bool
) -> AsyncIterator[IncidentOps]:
    """The incident actions over the store, telling Slack through a recording outbox; on exit
    every row handed over is committed. `schedules`: read the calendars (`escalate` resolves
    `schedule:NAME` targets)."""
    async with AsyncExitStack() as stack:
        engine = create_engine(config.store.url)
        stack.push_async_callback(engine.dispose)
        writer = Writer(create_sync_engine(config.store.url))
        await writer.start()
        stack.push_async_callback(writer.stop)
        redactor = Redactor.from_config(config.investigation, secrets.values())
        outbox = recording_outbox(
            engine,
            writer,
            channel=config.slack.channel,
            public_url=str(config.server.public_url),
            secrets=secrets,
            routing=config.routing,
            redactor=redactor,
        )
        stack.push_async_callback(outbox.stop)  # before the writer stops: rows commit first
        bus = EventBus()
        bus.subscribe(outbox.follow)
        oncall = OnCall(config.schedules, registry=CollectorRegistry())
        stack.push_async_callback(oncall.aclose)
        if schedules:
            await oncall.refresh(force=True)
        escalations = EscalationService(
            engine=engine,
            writer=writer,
            bus=bus,
            notifier=outbox,
            scheduler=ServerTimers(),
            config=config.escalation,
            resolve_targets=oncall.resolve_targets,
        )
        yield IncidentOps(
            engine=engine,
            writer=writer,
            bus=bus,
            escalations=escalations,
            investigations=NoInvestigations(),
            redactor=redactor,
            notifier=outbox,
        )


class ServerTimers:
    """The `Scheduling` of a command: a ladder's next step is already in the store (`next_at`),
    where the running server's scheduler finds it; nothing runs here after the action."""

    is_leader = False

    def schedule(self, due: Due) -> None:
        return None

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        work.close()


# --------------------------------------------------------------------------------------------
# The line said


def _missing(outcome: Outcome) -> Said:
    return Said(1, f"There is no incident #{outcome.incident_id}.")


def acknowledged(outcome: Outcome, by: str) -> Said:
    i = outcome.incident_id
    if outcome.result is Result.MISSING:
        return _missing(outcome)
    if outcome.changed:
        return Said(0, f"#{i} acknowledged by {by}; escalation stopped.")
    if outcome.status is IncidentStatus.ACKNOWLEDGED:
        return Said(0, f"#{i} was already acknowledged by {outcome.acknowledged_by or 'someone'}.")
    return Said(1, f"#{i} is already resolved: nothing to acknowledge.")


def resolved(outcome: Outcome, by: str) -> Said:
    i = outcome.incident_id
    if outcome.result is Result.MISSING:
        return _missing(outcome)
    if outcome.changed:
        return Said(0, f"#{i} resolved by {by}.")
    return Said(0, f"#{i} was already resolved.")


def escalated(outcome: Outcome) -> Said:
    i = outcome.incident_id
    escalation = outcome.escalation
    if outcome.result is Result.MISSING or escalation is None or escalation.result == "missing":
        return _missing(outcome)
    if escalation.result == "paged":
        who = ", ".join(escalation.targets) or "nobody on call"
        return Said(0, f"#{i} escalated to level {escalation.level}: {who} paged.")
    return Said(
        1,
        {
            "resolved": f"#{i} is resolved: nothing to escalate.",
            "no_policy": (
                f"No escalation policy matches #{i}, so there is nobody to page; nothing was "
                "changed (add one under escalation.policies)."
            ),
            "last_level": (
                f"#{i} is already at the last escalation level ({escalation.level}): nobody "
                "further to page."
            ),
            "raced": f"#{i} changed while escalating; try again.",
        }[escalation.result],
    )


def noted(outcome: Outcome, by: str) -> Said:
    if outcome.result is Result.MISSING:
        return _missing(outcome)
    return Said(0, f"#{outcome.incident_id}: note by {by} added to the timeline.")
