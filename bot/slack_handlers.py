"""What Slack users can do: buttons, the slash command, ``@firebreak`` questions in a thread.

Every listener acknowledges within Slack's 3 s. The slash command answers in its
acknowledgement when the answer is ready within ``QUICK_ANSWER_S`` (store reads, state
changes), else it acknowledges with "working on it" and answers later through
``response_url``. Buttons acknowledge first and do the work afterwards. No listener calls the
Slack Web API itself: cards and thread replies go through the notifier's outbox; only the
ephemeral answers use ``response_url`` (after the acknowledgement).

State changes are conditional updates in one transaction with their timeline event
(``firebreak.store.incidents``), so a second click, a retry or another replica changes
nothing; the incident bus then tells the card (and the other components) about it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp

from firebreak.bot import cards
from firebreak.bot.slack_outbox import OutboxNotifier, blocks_json
from firebreak.events import Change, IncidentEvent
from firebreak.store import incidents
from firebreak.store.schemas import EventType, IncidentStatus

log = structlog.get_logger(__name__)

QUICK_ANSWER_S = 2.0
MAX_TITLE = 300
NOT_RUNNING_INVESTIGATIONS = (
    ":warning: Investigations are not running in this Firebreak, so I can't do that right now."
)
NOT_RUNNING_ESCALATIONS = (
    ":warning: Escalations are not running in this Firebreak, so nobody can be paged from here."
)
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
_ID = re.compile(r"^#?(\d{1,18})$")


@dataclass
class Reply:
    """What to tell the user, and whether the action changed anything."""

    text: str
    blocks: list[Any] | None = None
    changed: bool = True
    response_type: str = "ephemeral"
    missing: bool = False  # the incident does not exist

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"text": self.text, "response_type": self.response_type}
        if self.blocks:
            message["blocks"] = blocks_json(self.blocks)
        return message


def _missing(incident_id: int) -> Reply:
    return Reply(f"There is no incident #{incident_id}.", changed=False, missing=True)


class IncidentOps:
    """The incident actions behind both the buttons and the slash command."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    @property
    def engine(self) -> Any:
        return self.runtime.engine

    def _publish(self, incident_id: int, change: Change, actor: str) -> None:
        self.runtime.bus.publish(IncidentEvent(incident_id, change, actor))

    async def acknowledge(self, incident_id: int, user: str) -> Reply:
        result = await self.runtime.writer.run(
            partial(incidents.acknowledge, incident_id=incident_id, actor=user)
        )
        if result.status is None:
            return _missing(incident_id)
        if result.changed:
            self._publish(incident_id, Change.UPDATED, user)
            return Reply(f":eyes: You acknowledged incident #{incident_id}; escalation stopped.")
        if result.status == IncidentStatus.ACKNOWLEDGED:
            who = cards.mention(result.acknowledged_by) if result.acknowledged_by else "someone"
            return Reply(
                f"Incident #{incident_id} was already acknowledged by {who}.", changed=False
            )
        return Reply(f"Incident #{incident_id} is already resolved.", changed=False)

    async def resolve(self, incident_id: int, user: str) -> Reply:
        result = await self.runtime.writer.run(
            partial(incidents.resolve, incident_id=incident_id, actor=user)
        )
        if result.status is None:
            return _missing(incident_id)
        if result.changed:
            self._publish(incident_id, Change.RESOLVED, user)
            return Reply(f":white_check_mark: You resolved incident #{incident_id}.")
        return Reply(f"Incident #{incident_id} is already resolved.", changed=False)

    async def escalate(self, incident_id: int, user: str) -> Reply:
        incident = await self._incident(incident_id)
        if incident is None:
            return _missing(incident_id)
        if incident.status == IncidentStatus.RESOLVED:
            return Reply(
                f"Incident #{incident_id} is resolved; nothing to escalate.", changed=False
            )
        escalations = self.runtime.escalations
        if escalations is None:
            return Reply(NOT_RUNNING_ESCALATIONS, changed=False)
        answer = await escalations.escalate_now(incident_id, actor=user)
        return Reply(answer or f":mega: Escalated incident #{incident_id}.")

    async def investigate(self, incident_id: int, user: str) -> Reply:
        if await self._incident(incident_id) is None:
            return _missing(incident_id)
        investigations = self.runtime.investigations
        if investigations is None:
            return Reply(NOT_RUNNING_INVESTIGATIONS, changed=False)
        started = investigations.request(
            incident_id, actor=user, reason=f"re-investigation requested by {user}"
        )
        if started:
            return Reply(
                f":mag: Investigating incident #{incident_id} again; "
                "the analysis will appear in the card's thread."
            )
        return Reply(
            f"An investigation of incident #{incident_id} is already running.", changed=False
        )

    async def declare(self, title: str, user: str) -> Reply:
        incident_id = await self.runtime.writer.run(
            partial(incidents.declare, title=title[:MAX_TITLE], actor=user)
        )
        self._publish(incident_id, Change.OPENED, user)  # card + investigation + escalation
        channel = self.runtime.config.slack.channel
        return Reply(
            f":rotating_light: Declared incident #{incident_id}: "
            f"{cards.escape(title[:MAX_TITLE])}. Its card is going to {cards.mention(channel)}."
        )

    async def status(self, incident_id: int) -> Reply:
        incident = await self._incident(incident_id, with_alerts=True)
        if incident is None:
            return _missing(incident_id)
        text, blocks = cards.incident_card(
            incident, alertmanager_url=self.runtime.config.slack.alertmanager_url
        )
        return Reply(text, blocks)

    async def timeline(self, incident_id: int) -> Reply:
        async with self.engine.connect() as conn:
            events = await incidents.timeline(conn, incident_id)
        if events is None:
            return _missing(incident_id)
        return Reply(
            f"Timeline of incident #{incident_id} ({len(events)} events)",
            cards.timeline_blocks(events),
        )

    async def list_open(self) -> Reply:
        async with self.engine.connect() as conn:
            found = [
                *await incidents.list_incidents(conn, IncidentStatus.TRIGGERED),
                *await incidents.list_incidents(conn, IncidentStatus.ACKNOWLEDGED),
            ]
        found.sort(key=lambda i: i.id, reverse=True)
        text = f"{len(found)} open incident(s)" if found else "No open incidents."
        return Reply(text, cards.incident_list_blocks(found))

    async def _incident(self, incident_id: int, *, with_alerts: bool = False) -> Any:
        async with self.engine.connect() as conn:
            return await incidents.get_incident(conn, incident_id, with_alerts=with_alerts)

    async def ask(self, incident_id: int, question: str, user: str) -> str:
        """Record the question, get the answer, record it: both NOTE events by the asker."""
        await self._note(
            incident_id,
            user,
            f"Question: {question}",
            {"kind": "question", "question": question[:4000]},
        )
        investigations = self.runtime.investigations
        if investigations is None:
            answer = NOT_RUNNING_INVESTIGATIONS
        else:
            try:
                answer = await investigations.answer_question(incident_id, question, actor=user)
            except Exception as exc:
                log.exception("answering a question failed", incident_id=incident_id)
                answer = f":x: I could not answer that ({type(exc).__name__})."
        await self._note(
            incident_id,
            user,
            f"Answer: {answer}",
            {"kind": "answer", "question": question[:4000], "answered_by": "firebreak"},
        )
        return answer

    async def _note(self, incident_id: int, user: str, text: str, data: dict[str, Any]) -> None:
        await incidents.write_event(
            self.runtime.writer, incident_id, EventType.NOTE, user, text[:4000], data
        )


# ---------------------------------------------------------------------- the slash command

Answer = Callable[..., Awaitable[None]]


def parse_id(raw: str) -> int | None:
    match = _ID.match(raw.strip())
    return int(match.group(1)) if match else None


async def _quick(
    work: Coroutine[Any, Any, Reply], ack: Answer, respond: Answer, *, what: str
) -> None:
    """Answer in the acknowledgement when ``work`` is quick, else through ``response_url``."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=QUICK_ANSWER_S)
    if not done:
        await ack(text=":hourglass_flowing_sand: Working on it…", response_type="ephemeral")
    try:
        reply = await task
    except Exception as exc:
        log.exception("Slack command failed", command=what)
        reply = Reply(f":x: `{what}` failed: {type(exc).__name__}. Try again.", changed=False)
    if done:
        await ack(**reply.message())
    else:
        await _respond(respond, reply.message())


async def _respond(respond: Answer, message: dict[str, Any]) -> None:
    try:
        await respond(**message, replace_original=False)
    except Exception:
        log.warning("could not answer through response_url", exc_info=True)


def register(app: AsyncApp, runtime: Any, notifier: OutboxNotifier) -> IncidentOps:
    """Attach every listener to ``app``."""
    ops = IncidentOps(runtime)
    command_name = runtime.config.slack.command
    by_id: dict[str, Callable[[int, str], Coroutine[Any, Any, Reply]]] = {
        "status": lambda i, _u: ops.status(i),
        "timeline": lambda i, _u: ops.timeline(i),
        "ack": ops.acknowledge,
        "acknowledge": ops.acknowledge,
        "escalate": ops.escalate,
        "resolve": ops.resolve,
        "investigate": ops.investigate,
    }

    @app.command(command_name)
    async def on_command(ack: Answer, command: dict[str, Any], respond: Answer) -> None:
        user = command.get("user_id") or "unknown"
        text = (command.get("text") or "").strip()
        sub, _, rest = text.partition(" ")
        sub, rest = sub.lower(), rest.strip()
        if sub in ("", "help"):
            await ack(text=cards.help_text(command_name), response_type="ephemeral")
        elif sub == "list":
            await _quick(ops.list_open(), ack, respond, what="list")
        elif sub == "declare":
            if not rest:
                await ack(
                    text=cards.usage_text(command_name, "declare TITLE"), response_type="ephemeral"
                )
            else:
                await _quick(ops.declare(rest, user), ack, respond, what="declare")
        elif sub in by_id:
            incident_id = parse_id(rest) if rest else None
            if not rest:
                await ack(
                    text=cards.usage_text(command_name, f"{sub} ID"), response_type="ephemeral"
                )
            elif incident_id is None:
                await ack(
                    text=cards.no_incident_text(command_name, rest), response_type="ephemeral"
                )
            else:
                await _quick(
                    _or_unknown(by_id[sub](incident_id, user), rest), ack, respond, what=sub
                )
        else:
            await ack(text=cards.unknown_command_text(command_name, sub), response_type="ephemeral")

    async def _or_unknown(work: Coroutine[Any, Any, Reply], raw: str) -> Reply:
        reply = await work
        if reply.missing:
            return Reply(cards.no_incident_text(command_name, raw), changed=False)
        return reply

    # ------------------------------------------------------------------ buttons

    def button(
        action_id: str,
        run: Callable[[int, str], Coroutine[Any, Any, Reply]],
        *,
        always_answer: bool,
    ) -> None:
        @app.action(action_id)
        async def on_button(ack: Answer, body: dict[str, Any], respond: Answer) -> None:
            await ack()
            user = (body.get("user") or {}).get("id") or "unknown"
            raw = str(((body.get("actions") or [{}])[0]).get("value") or "")
            incident_id = parse_id(raw)
            if incident_id is None:
                await _respond(respond, {"text": f"Bad button value `{cards.escape(raw[:40])}`."})
                return
            try:
                reply = await run(incident_id, user)
            except Exception as exc:
                log.exception("Slack button failed", action=action_id, incident_id=incident_id)
                reply = Reply(f":x: That failed: {type(exc).__name__}. Try again.", changed=False)
            if always_answer or not reply.changed:
                await _respond(respond, reply.message())

    button(cards.ACTION_ACK, ops.acknowledge, always_answer=False)
    button(cards.ACTION_RESOLVE, ops.resolve, always_answer=False)
    button(cards.ACTION_ESCALATE, ops.escalate, always_answer=True)
    button(cards.ACTION_INVESTIGATE, ops.investigate, always_answer=True)

    def remediation(action_id: str, approve: bool, delay_s: float = 0) -> None:
        @app.action(action_id)
        async def on_decision(
            ack: Answer, body: dict[str, Any], respond: Answer, client: Any
        ) -> None:
            await ack()
            user = (body.get("user") or {}).get("id") or "unknown"
            raw = str(((body.get("actions") or [{}])[0]).get("value") or "")
            try:
                incident_id, _action = cards.parse_remediation_value(raw)
            except (ValueError, KeyError, TypeError):
                await _respond(respond, {"text": "That button carries no incident."})
                return
            text = await _decide(incident_id, user, approve, delay_s, client)
            await _respond(respond, {"text": text, "response_type": "ephemeral"})

    async def _decide(
        incident_id: int, user: str, approve: bool, delay_s: float, client: Any
    ) -> str:
        investigations = runtime.investigations
        if investigations is None:
            return NOT_RUNNING_INVESTIGATIONS
        groups = await _user_groups(client, user, runtime.config.remediation.approvers)
        try:
            return await investigations.decide_remediation(
                incident_id, approve=approve, actor=user, delay_s=delay_s, user_groups=groups
            )
        except Exception as exc:
            log.exception("remediation decision failed", incident_id=incident_id)
            return f":x: The decision could not be recorded ({type(exc).__name__})."

    remediation(cards.ACTION_REMEDIATION_APPROVE, True)
    remediation(
        cards.ACTION_REMEDIATION_APPROVE_LATER, True, runtime.config.remediation.approve_later_s
    )
    remediation(cards.ACTION_REMEDIATION_REJECT, False)

    # ------------------------------------------------------------------ @firebreak in a thread

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any]) -> None:
        channel = event.get("channel") or ""
        user = event.get("user") or "unknown"
        thread_ts = event.get("thread_ts")
        question = " ".join(_MENTION.sub(" ", event.get("text") or "").split())
        incident_id = None
        if thread_ts:
            async with runtime.engine.connect() as conn:
                incident_id = await incidents.find_by_slack_thread(conn, channel, thread_ts)
        if incident_id is None:
            await notifier.enqueue_message(
                channel,
                f"{cards.mention(user)} Ask me inside an incident's thread and I'll answer from "
                f"its evidence and analysis. {cards.escape(command_name)} help lists commands.",
                thread_ts=thread_ts or event.get("ts"),
                purpose="mention_help",
            )
            return
        if not question:
            await notifier.enqueue_thread(
                incident_id,
                f"{cards.mention(user)} What would you like to know about incident "
                f"#{incident_id}? Ask me a question after the mention.",
                purpose="answer",
            )
            return
        answer = await ops.ask(incident_id, question, user)
        await notifier.enqueue_thread(
            incident_id, cards.answer_text(user, question, answer), purpose="answer"
        )

    return ops


async def _user_groups(client: Any, user: str, approvers: list[str]) -> list[str]:
    """The user groups among ``approvers`` that ``user`` belongs to (usergroups:read)."""
    groups = [a for a in approvers if a.startswith("S")]
    found: list[str] = []
    for group in groups:
        try:
            response = await client.usergroups_users_list(usergroup=group)
        except Exception:
            log.warning("could not read a user group", group=group, exc_info=True)
            continue
        if user in (response.get("users") or []):
            found.append(group)
    return found
