"""Slack listeners: buttons, the slash command, ``@firebreak`` questions in a thread.

Every listener acknowledges within Slack's 3 s. The slash command answers in its
acknowledgement when the answer is ready within ``QUICK_ANSWER_S`` (store reads, state
changes), else it acknowledges with "working on it" and answers later through
``response_url``. Buttons acknowledge first and do the work afterwards. No listener calls the
Slack Web API itself: thread replies go through the notifier's outbox; only the ephemeral
answers use ``response_url`` (after the acknowledgement), and the Wrong button opens its form
with ``views.open`` directly (its ``trigger_id`` lasts 3 s: no outbox could keep it). What a
person can do is the same from every surface: the listeners call `incidents.flows.IncidentOps`
(and `incidents.feedback.FeedbackOps`) and word its outcome (bot/messages/).

Who may act on an incident is `access.responders` (access/responders.py): each action checks
it first (`responders_only`) and a refusal changes nothing. Reading (`status`, `timeline`,
`list`) is open in the incident's channel and to its responders anywhere; `@firebreak` is
answered only in the incident's thread. Approvals follow `remediation.approvers` instead.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.access.responders import Access, GroupMembers
from firebreak.bot.config import SlackConfig
from firebreak.bot.messages import replies
from firebreak.bot.messages.blocks import escape, mention
from firebreak.bot.messages.commands import (
    help_text,
    incident_list_blocks,
    no_incident_text,
    page_link_text,
    timeline_blocks,
    unknown_command_text,
    usage_text,
)
from firebreak.bot.messages.escalation import oncall_text, unknown_schedule_text
from firebreak.bot.messages.feedback import (
    ACTION_FEEDBACK_CORRECT,
    ACTION_FEEDBACK_WRONG,
    CAUSE_BLOCK,
    VIEW_ACTUAL_CAUSE,
    actual_cause_modal,
    feedback_given,
    feedback_refused,
    parse_feedback_value,
    submitted_cause,
)
from firebreak.bot.messages.incident import (
    ACTION_ACK,
    ACTION_ESCALATE,
    ACTION_INVESTIGATE,
    ACTION_RESOLVE,
)
from firebreak.bot.messages.rca import postmortem_comment, postmortem_message
from firebreak.bot.messages.remediation import (
    ACTION_REMEDIATION_APPROVE,
    ACTION_REMEDIATION_APPROVE_LATER,
    ACTION_REMEDIATION_REJECT,
    ApprovalTarget,
    decided,
    parse_remediation_value,
)
from firebreak.bot.messages.replies import Reply, answer_text
from firebreak.bot.messages.silences import (
    ACTION_SILENCE,
    ACTION_UNSILENCE,
    parse_silence_value,
    silence_reply,
)
from firebreak.bot.slack_outbox import OutboxNotifier
from firebreak.bot.slack_transport import ThreadFile
from firebreak.bot.web.auth import incident_link, incidents_link
from firebreak.incidents.feedback import FeedbackOps
from firebreak.incidents.flows import IncidentOps
from firebreak.incidents.ports import Investigations, Postmortems, RemediationVote
from firebreak.incidents.silences import SilenceOps
from firebreak.oncall.answers import oncall_answers
from firebreak.oncall.schedules import OnCall, UnknownSchedule
from firebreak.store import incidents
from firebreak.store.schemas import IncidentStatus, Verdict
from firebreak.store.writer import Writer

log = structlog.get_logger(__name__)

QUICK_ANSWER_S = 2.0
MAX_TITLE = 300
MAX_QUESTION = 2000  # an @firebreak question is cut (marked) to this before anything reads it
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
_ID = re.compile(r"^#?(\d{1,18})$")

Answer = Callable[..., Awaitable[None]]
ById = Callable[[int, str], Coroutine[Any, Any, Reply]]
READS = ("status", "timeline", "link")  # open in the incident's channel, and to responders anywhere


def responders_only(what: str) -> Callable[[Any], Any]:
    """The decorated action (`self, incident_id, user, …`) runs only for the incident's
    responders (`access.responders`); anyone else is answered why, and nothing changes."""

    def wrap(act: Any) -> Any:
        @functools.wraps(act)
        async def guarded(self: Handlers, incident_id: int, user: str, *args: Any) -> Reply:
            refused = await self.access.may_act(user, incident_id)
            if refused is not None:
                return replies.not_a_responder(refused, what)
            return await act(self, incident_id, user, *args)

        return guarded

    return wrap


@dataclass(frozen=True)
class Handlers:
    """Everything the listeners use."""

    ops: IncidentOps
    investigations: Investigations  # remediation decisions
    engine: AsyncEngine  # reads: status, timeline, list, which incident a thread is
    writer: Writer  # the Events API de-duplication
    notifier: OutboxNotifier  # answers in threads
    config: SlackConfig
    approvers: list[str]  # remediation.approvers (user groups are looked up)
    approve_later_s: float
    oncall: OnCall  # `/incident oncall`
    silences: SilenceOps  # Silence / Unsilence, `/incident silence|unsilence`
    postmortems: Postmortems  # `/incident postmortem ID`
    feedback: FeedbackOps  # the RCA reply's Correct / Wrong
    access: Access  # who may act on an incident, and read it where
    groups: GroupMembers  # Slack user groups' members (cached), for approvers

    # ------------------------------------------------------------------ the actions, worded

    @responders_only("acknowledge it")
    async def acknowledge(self, incident_id: int, user: str) -> Reply:
        return replies.acknowledged(await self.ops.acknowledge(incident_id, user))

    @responders_only("resolve it")
    async def resolve(self, incident_id: int, user: str) -> Reply:
        return replies.resolved(await self.ops.resolve(incident_id, user))

    @responders_only("escalate it")
    async def escalate(self, incident_id: int, user: str) -> Reply:
        return replies.escalated(await self.ops.escalate(incident_id, user))

    @responders_only("re-investigate it")
    async def investigate(self, incident_id: int, user: str) -> Reply:
        return replies.investigating(await self.ops.investigate(incident_id, user))

    async def declare(self, title: str, user: str) -> Reply:
        title = self.ops.clean(title, MAX_TITLE)  # cut, then scrubbed: once, on the way in
        incident_id = await self.ops.declare(title, user)
        channel = self.notifier.card_channel({})  # a declared incident has no labels
        return replies.declared(incident_id, title, channel)

    async def status(self, incident_id: int, _user: str = "") -> Reply:
        async with self.engine.connect() as conn:
            incident = await incidents.get_incident(conn, incident_id)
        if incident is None:
            return replies.missing(incident_id)
        text, blocks = await self.notifier.render_card(incident)
        return Reply(text, blocks)

    @responders_only("silence it")
    async def silence(self, incident_id: int, user: str, duration: str) -> Reply:
        outcome = await self.silences.silence(incident_id, duration, user)
        return silence_reply(outcome, self.config.command)

    @responders_only("unsilence it")
    async def unsilence(self, incident_id: int, user: str) -> Reply:
        return silence_reply(await self.silences.unsilence(incident_id, user), self.config.command)

    def on_call(self, schedule: str) -> Reply:
        try:
            answers = oncall_answers(self.oncall, schedule or None, datetime.now(UTC))
        except UnknownSchedule as exc:
            return Reply(unknown_schedule_text(exc), changed=False)
        return Reply(oncall_text(answers))

    async def timeline(self, incident_id: int, _user: str = "") -> Reply:
        async with self.engine.connect() as conn:
            events = await incidents.timeline(conn, incident_id)
        if events is None:
            return replies.missing(incident_id)
        return Reply(
            f"Timeline of incident #{incident_id} ({len(events)} events)",
            timeline_blocks(events),
        )

    async def read(self, sub: str, incident_id: int, user: str, channel: str) -> Reply:
        """`status` or `timeline`: in the incident's channel, or for its responders."""
        refused = await self.access.may_read(user, incident_id, channel)
        if refused is not None:
            card = await self.access.card_channel(incident_id)
            return replies.not_readable_here(refused, card)
        reads = {"status": self.status, "timeline": self.timeline, "link": self.link}
        return await reads[sub](incident_id, user)

    async def link(self, incident_id: int, user: str = "") -> Reply:
        """The incident page's signed link, made for `user` (the page's forms act as them),
        answered to them only, like every answer to the command."""
        async with self.engine.connect() as conn:
            if not await incidents.exists(conn, incident_id):
                return replies.missing(incident_id)
        now = datetime.now(UTC)
        url = incident_link(
            self.notifier.public_url, incident_id, self.notifier.secrets, now, person=user
        )
        return Reply(page_link_text(incident_id, url))

    async def list_open(self, user: str = "", channel: str = "") -> Reply:
        """The open incidents `user` may read from `channel`."""
        async with self.engine.connect() as conn:
            found = [
                *await incidents.list_incidents(conn, IncidentStatus.TRIGGERED),
                *await incidents.list_incidents(conn, IncidentStatus.ACKNOWLEDGED),
            ]
        readable = await self.access.readable(user, [i.id for i in found], channel)
        found = [i for i in found if i.id in readable]
        found = [incident.shown(self.ops.redactor.redact_value) for incident in found]
        found.sort(key=lambda i: i.id, reverse=True)
        text = f"{len(found)} open incident(s)" if found else "No open incidents."
        return Reply(text, incident_list_blocks(found, self._list_link()))

    def _list_link(self) -> str | None:
        """The list page's signed link. Its session opens every incident's page, so it is
        given only while `access.responders` is not configured (everyone may read all)."""
        if self.access.config is not None:
            return None
        return incidents_link(self.notifier.public_url, self.notifier.secrets, datetime.now(UTC))

    async def decide(self, target: ApprovalTarget, user: str, approve: bool, delay_s: float) -> str:
        """Approve or reject exactly the proposal on the message clicked (its run and digest).
        Who may is `remediation.approvers`, not the responders."""
        incident_id = target.incident_id
        groups = [
            group
            for group in self.approvers
            if group.startswith("S") and user in await self.groups.members(group)
        ]
        try:
            vote = RemediationVote(
                incident_id,
                approve,
                user,
                approval=target.approval,
                digest=target.digest,
                delay_s=delay_s,
                user_groups=groups,
            )
            decision = await self.investigations.decide_remediation(vote)
        except Exception as exc:
            log.exception("remediation decision failed", incident_id=incident_id)
            return f":x: The decision could not be recorded ({type(exc).__name__})."
        return decided(decision, incident_id, self.approvers)

    @responders_only("draft its postmortem")
    async def postmortem(self, incident_id: int, user: str) -> Reply:
        """Draft the postmortem and post it in the incident's thread (a file when long)."""
        if self.postmortems is None:
            return Reply("Postmortem drafts are not available here.", changed=False)
        draft = await self.postmortems.draft(incident_id, actor=user)
        if draft is None:
            return replies.missing(incident_id)
        message = postmortem_message(incident_id, draft.markdown)
        if message is not None:
            text, blocks = message
            await self.notifier.enqueue_thread(incident_id, text, blocks, purpose="postmortem")
        else:
            file = ThreadFile(
                filename=f"postmortem-{incident_id}.md",
                title=f"Postmortem draft: incident #{incident_id}",
                content=draft.markdown.encode(),
                comment=postmortem_comment(incident_id),
            )
            await self.notifier.enqueue_thread_file(incident_id, file, purpose="postmortem")
        how = "from the LLM's narrative" if draft.written_by == "llm" else "from the template"
        return Reply(
            f":page_facing_up: Postmortem draft for incident #{incident_id} ({how}) posted "
            "in its thread."
        )

    async def confirm(self, incident_id: int, run_id: str, user: str) -> Reply:
        """Correct: recorded at once; the RCA reply then shows "Confirmed by" to everyone."""
        refused = await self.access.may_act(user, incident_id)
        if refused is not None:
            return replies.not_a_responder(refused, JUDGE)
        done = await self.feedback.give(incident_id, Verdict.CORRECT, user, run_id=run_id)
        return feedback_given(done, incident_id)

    async def ask_actual_cause(
        self, incident_id: int, run_id: str, user: str, trigger_id: str, client: Any
    ) -> Reply | None:
        """Wrong: opens the form asking for the actual cause; a Reply instead when the
        analysis can no longer be judged (replaced by a newer one) or not by `user`."""
        not_theirs = await self.access.may_act(user, incident_id)
        if not_theirs is not None:
            return replies.not_a_responder(not_theirs, JUDGE)
        refused = await self.feedback.refusal(incident_id, run_id)
        if refused is not None:
            text = feedback_refused(refused, incident_id) or ""
            return Reply(f":warning: {text}", changed=False)
        async with self.engine.connect() as conn:
            incident = await incidents.get_incident(conn, incident_id, with_alerts=False)
        said = incident.analysis.root_cause if incident and incident.analysis else ""
        view = actual_cause_modal(incident_id, run_id, said)
        await client.views_open(trigger_id=trigger_id, view=view)
        return None

    async def record_actual_cause(
        self, incident_id: int, run_id: str, user: str, cause: str
    ) -> str | None:
        """The form's submission: None when recorded, else why not (the field's error)."""
        if await self.access.may_act(user, incident_id) is not None:
            return f"Only responders of incident #{incident_id} may {JUDGE}."
        done = await self.feedback.give(incident_id, Verdict.WRONG, user, cause, run_id=run_id)
        return feedback_refused(done.result, incident_id)

    def by_id(self) -> dict[str, ById]:
        """The subcommands that take an incident id."""
        return {
            "status": self.status,
            "timeline": self.timeline,
            "link": self.link,
            "ack": self.acknowledge,
            "acknowledge": self.acknowledge,
            "escalate": self.escalate,
            "resolve": self.resolve,
            "investigate": self.investigate,
            "unsilence": self.unsilence,
            "postmortem": self.postmortem,
        }


JUDGE = "judge its analysis"


def register(app: AsyncApp, handlers: Handlers) -> None:
    """Attach every listener to ``app``."""
    _register_command(app, handlers)
    for action_id, run, always_answer in (
        (ACTION_ACK, handlers.acknowledge, False),
        (ACTION_RESOLVE, handlers.resolve, False),
        (ACTION_ESCALATE, handlers.escalate, True),
        (ACTION_INVESTIGATE, handlers.investigate, True),
    ):
        _register_button(app, action_id, run, always_answer=always_answer)
    for action_id, approve, delay_s in (
        (ACTION_REMEDIATION_APPROVE, True, 0.0),
        (ACTION_REMEDIATION_APPROVE_LATER, True, handlers.approve_later_s),
        (ACTION_REMEDIATION_REJECT, False, 0.0),
    ):
        _register_decision(app, handlers, action_id, approve, delay_s)
    _register_silence_buttons(app, handlers)
    _register_feedback(app, handlers)
    _register_mention(app, handlers)


# ---------------------------------------------------------------------- the slash command


def acting_user(payload: Mapping[str, Any]) -> str:
    """The Slack user who acted, from any payload Slack sends: a slash command (`user_id`), a
    click or a form (`user.id`), an event (`user`). The timeline records it as the actor."""
    user = payload.get("user")
    if isinstance(user, Mapping):
        user = user.get("id")
    return str(user or payload.get("user_id") or "unknown")


def parse_id(raw: str) -> int | None:
    match = _ID.match(raw.strip())
    return int(match.group(1)) if match else None


def _register_command(app: AsyncApp, handlers: Handlers) -> None:
    command_name = handlers.config.command
    by_id = handlers.by_id()

    @app.command(command_name)
    async def on_command(ack: Answer, command: dict[str, Any], respond: Answer) -> None:
        user = acting_user(command)
        channel = command.get("channel_id") or ""
        sub, _, rest = (command.get("text") or "").strip().partition(" ")
        sub, rest = sub.lower(), rest.strip()

        async def say(text: str) -> None:
            await ack(text=text, response_type="ephemeral")

        if sub in ("", "help"):
            await say(help_text(command_name))
        elif sub == "list":
            await _quick(handlers.list_open(user, channel), ack, respond, what="list")
        elif sub == "declare":
            if not rest:
                await say(usage_text(command_name, "declare TITLE"))
            else:
                await _quick(handlers.declare(rest, user), ack, respond, what="declare")
        elif sub == "oncall":
            await ack(**handlers.on_call(rest).message())
        elif sub == "silence":
            raw_id, _, duration = rest.partition(" ")
            incident_id = parse_id(raw_id) if raw_id else None
            if not raw_id or not duration.strip():
                await say(usage_text(command_name, "silence ID DURATION"))
            elif incident_id is None:
                await say(no_incident_text(command_name, raw_id))
            else:
                work = handlers.silence(incident_id, user, duration.strip())
                await _quick(_or_unknown(work, command_name, raw_id), ack, respond, what=sub)
        elif sub in by_id:
            incident_id = parse_id(rest) if rest else None
            if not rest:
                await say(usage_text(command_name, f"{sub} ID"))
            elif incident_id is None:
                await say(no_incident_text(command_name, rest))
            else:
                run = (
                    handlers.read(sub, incident_id, user, channel)
                    if sub in READS
                    else by_id[sub](incident_id, user)
                )
                await _quick(_or_unknown(run, command_name, rest), ack, respond, what=sub)
        else:
            await say(unknown_command_text(command_name, sub))


async def _or_unknown(work: Coroutine[Any, Any, Reply], command: str, raw: str) -> Reply:
    reply = await work
    if reply.missing:
        return Reply(no_incident_text(command, raw), changed=False)
    return reply


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


# ---------------------------------------------------------------------- buttons


def _clicked(body: dict[str, Any]) -> tuple[str, str]:
    """(user, the button's value) of an interactivity payload."""
    return acting_user(body), str(((body.get("actions") or [{}])[0]).get("value") or "")


def _register_button(app: AsyncApp, action_id: str, run: ById, *, always_answer: bool) -> None:
    @app.action(action_id)
    async def on_button(ack: Answer, body: dict[str, Any], respond: Answer) -> None:
        await ack()
        user, raw = _clicked(body)
        incident_id = parse_id(raw)
        if incident_id is None:
            await _respond(respond, {"text": f"Bad button value `{escape(raw[:40])}`."})
            return
        try:
            reply = await run(incident_id, user)
        except Exception as exc:
            log.exception("Slack button failed", action=action_id, incident_id=incident_id)
            reply = Reply(f":x: That failed: {type(exc).__name__}. Try again.", changed=False)
        if always_answer or not reply.changed:
            await _respond(respond, reply.message())


def _register_silence_buttons(app: AsyncApp, handlers: Handlers) -> None:
    """One Silence button per configured duration (value `ID:DURATION`), and Unsilence."""

    @app.action(re.compile(rf"^{ACTION_SILENCE}_\d+$"))
    async def on_silence(ack: Answer, body: dict[str, Any], respond: Answer) -> None:
        await ack()
        user, raw = _clicked(body)
        try:
            incident_id, duration = parse_silence_value(raw)
        except ValueError:
            await _respond(respond, {"text": f"Bad button value `{escape(raw[:40])}`."})
            return
        await _answer_click(respond, handlers.silence(incident_id, user, duration), "silence")

    _register_button(app, ACTION_UNSILENCE, handlers.unsilence, always_answer=True)


async def _answer_click(respond: Answer, work: Coroutine[Any, Any, Reply], what: str) -> None:
    try:
        reply = await work
    except Exception as exc:
        log.exception("Slack button failed", action=what)
        reply = Reply(f":x: That failed: {type(exc).__name__}. Try again.", changed=False)
    await _respond(respond, reply.message())


def _register_feedback(app: AsyncApp, handlers: Handlers) -> None:
    """Correct records at once (answered only when nothing changed: the reply shows the
    verdict); Wrong opens a form, whose submission records the verdict with its cause."""

    @app.action(ACTION_FEEDBACK_CORRECT)
    async def on_correct(ack: Answer, body: dict[str, Any], respond: Answer) -> None:
        await ack()
        user, raw = _clicked(body)
        target = await _feedback_target(raw, respond)
        if target is not None:
            reply = await _reply_of(handlers.confirm(*target, user), "feedback")
            if not reply.changed:
                await _respond(respond, reply.message())

    @app.action(ACTION_FEEDBACK_WRONG)
    async def on_wrong(ack: Answer, body: dict[str, Any], respond: Answer, client: Any) -> None:
        await ack()
        user, raw = _clicked(body)
        target = await _feedback_target(raw, respond)
        if target is None:
            return
        trigger_id = str(body.get("trigger_id") or "")
        try:
            refused = await handlers.ask_actual_cause(*target, user, trigger_id, client)
        except Exception as exc:
            log.exception("could not open the actual-cause form", incident_id=target[0])
            refused = Reply(f":x: The form did not open ({type(exc).__name__}). Try again.")
        if refused is not None:
            await _respond(respond, refused.message())

    @app.view(VIEW_ACTUAL_CAUSE)
    async def on_cause(ack: Answer, body: dict[str, Any], view: dict[str, Any]) -> None:
        await submit_actual_cause(handlers, ack, body, view)


async def submit_actual_cause(
    handlers: Handlers, ack: Answer, body: dict[str, Any], view: dict[str, Any]
) -> None:
    """Record the Wrong verdict within Slack's 3 s when the store is quick, so a refusal shows
    on the form's field; else close the form and let it finish (the reply shows the verdict)."""
    user = acting_user(body)
    cause = submitted_cause(view)
    try:
        incident_id, run_id = parse_feedback_value(str(view.get("private_metadata") or ""))
    except ValueError:
        log.warning("actual-cause form without its incident", metadata=view.get("private_metadata"))
        await ack()
        return
    if not cause:
        await ack(response_action="errors", errors={CAUSE_BLOCK: "Say what it was."})
        return
    task = asyncio.ensure_future(handlers.record_actual_cause(incident_id, run_id, user, cause))
    done, _ = await asyncio.wait({task}, timeout=QUICK_ANSWER_S)
    if not done:
        await ack()
        task.add_done_callback(_log_failure)
        return
    try:
        error = task.result()
    except Exception as exc:
        log.exception("recording a Wrong verdict failed", incident_id=incident_id)
        error = f"That failed ({type(exc).__name__}). Try again."
    if error:
        await ack(response_action="errors", errors={CAUSE_BLOCK: error})
    else:
        await ack()


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("recording a Wrong verdict failed", error=repr(task.exception()))


async def _feedback_target(raw: str, respond: Answer) -> tuple[int, str] | None:
    """(incident id, run id) of a Correct / Wrong button, or None (answered) if malformed."""
    try:
        return parse_feedback_value(raw)
    except ValueError:
        await _respond(respond, {"text": f"Bad button value `{escape(raw[:40])}`."})
        return None


async def _reply_of(work: Coroutine[Any, Any, Reply], what: str) -> Reply:
    try:
        return await work
    except Exception as exc:
        log.exception("Slack button failed", action=what)
        return Reply(f":x: That failed: {type(exc).__name__}. Try again.", changed=False)


def _register_decision(
    app: AsyncApp, handlers: Handlers, action_id: str, approve: bool, delay_s: float
) -> None:
    @app.action(action_id)
    async def on_decision(ack: Answer, body: dict[str, Any], respond: Answer) -> None:
        await ack()
        user, raw = _clicked(body)
        try:
            target = parse_remediation_value(raw)
        except (ValueError, KeyError, TypeError):
            await _respond(respond, {"text": "That button carries no incident."})
            return
        text = await handlers.decide(target, user, approve, delay_s)
        await _respond(respond, {"text": text, "response_type": "ephemeral"})


# ---------------------------------------------------------------------- @firebreak in a thread


def _register_mention(app: AsyncApp, handlers: Handlers) -> None:
    @app.event("app_mention")
    async def on_mention(event: dict[str, Any]) -> None:
        await answer_mention(handlers, event)


async def answer_mention(handlers: Handlers, event: dict[str, Any]) -> None:
    notifier = handlers.notifier
    channel = event.get("channel") or ""
    user = acting_user(event)
    thread_ts = event.get("thread_ts")
    raw = (event.get("text") or "")[: MAX_QUESTION * 2]  # bounded before anything scans it
    question = " ".join(_MENTION.sub(" ", raw).split())
    incident_id = None
    if thread_ts:
        async with handlers.engine.connect() as conn:
            incident_id = await incidents.find_by_slack_thread(conn, channel, thread_ts)
    if incident_id is None:
        await notifier.enqueue_message(
            channel,
            f"{mention(user)} Ask me inside an incident's thread and I'll answer from "
            f"its evidence and analysis. {escape(handlers.config.command)} help lists "
            "commands.",
            thread_ts=thread_ts or event.get("ts"),
            purpose="mention_help",
        )
        return
    if not question:
        await notifier.enqueue_thread(
            incident_id,
            f"{mention(user)} What would you like to know about incident "
            f"#{incident_id}? Ask me a question after the mention.",
            purpose="answer",
        )
        return
    question = handlers.ops.clean(question, MAX_QUESTION)  # cut, then scrubbed: once
    answer = await handlers.ops.ask(incident_id, question, user)
    await notifier.enqueue_thread(
        incident_id, answer_text(user, question, answer), purpose="answer"
    )
