"""The postmortem draft: the facts from the store, the narrative from the LLM when one is
configured, else from Firebreak's template.

Facts (times, durations, people, the timeline, the root cause with its evidence, the
remediation runs, the action items) always come from incidents/postmortem.py. The LLM writes
only the summary and "what went well / what did not", as strict JSON through the same
self-healing loop as the reasoning agent (tools/llm_json.py: the validation errors sent back
with `postmortem_repair.md`, at most `max_json_retries` more calls). It sees the timeline
redacted and without people's names ("person A" instead), and cites timeline items by ref
(`T3`): a statement citing an item that does not exist is dropped, and the draft says so. Any
LLM failure leaves the template's narrative. The draft says which.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.agents.prompts import evidence_boundary, render
from firebreak.incidents.postmortem import (
    PostmortemDraft,
    PostmortemFacts,
    gather,
    time_text,
)
from firebreak.store.incidents import record_event
from firebreak.store.memory import RunFact
from firebreak.store.schemas import EventType, ExecutionStatus
from firebreak.store.writer import Writer
from firebreak.tools.llm import LLMGateway
from firebreak.tools.llm_json import ask_json
from firebreak.tools.models import Evidence
from firebreak.tools.redact import Redactor
from firebreak.tools.text import duration

log = structlog.get_logger(__name__)

LLM = "llm"
TEMPLATE = "template"
SCHEMA_NAME = "postmortem_narrative"
_REF = re.compile(r"\bT\d+\b")


class Statement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=600)
    refs: list[str] = Field(max_length=8, description="timeline refs (T1…) this statement rests on")


class PostmortemNarrative(BaseModel):
    """What the LLM writes: the narrative sections only."""

    model_config = ConfigDict(extra="forbid")

    summary: list[Statement] = Field(min_length=1, max_length=5)
    went_well: list[Statement] = Field(max_length=8)
    went_badly: list[Statement] = Field(max_length=8)


class Narrative(BaseModel):
    """The narrative as the draft shows it, whoever wrote it."""

    summary: list[str]
    went_well: list[str]
    went_badly: list[str]


# ---------------------------------------------------------------------- the template's narrative


def template_narrative(facts: PostmortemFacts) -> Narrative:
    """What the record alone says: no LLM, the same facts."""
    incident, analysis = facts.incident, facts.incident.analysis
    ending = (
        f"resolved by {incident_resolver(facts)} after {duration(facts.resolve_s)}"
        if incident.resolved_at is not None
        else f"still {incident.status.value}"
    )
    summary = [
        f"{incident.title} ({incident.severity}) on {incident.service}: opened "
        f"{time_text(incident.created_at)}, {ending}.",
        f"Root cause: {analysis.root_cause}" if analysis else "No root cause analysis was made.",
    ]
    well: list[str] = []
    badly: list[str] = []
    if facts.acknowledge_s is not None:
        well.append(f"Acknowledged {duration(facts.acknowledge_s)} after it opened.")
    elif incident.resolved_at is not None:
        badly.append("Nobody acknowledged it before it resolved.")
    if incident.escalation_level > 1:
        badly.append(f"The ladder reached escalation level {incident.escalation_level}.")
    for run in facts.runs:
        (well if run.ok else badly).append(f"Remediation `{run.action}`: {run_outcome(run)}.")
    if analysis is not None and analysis.execution_status is ExecutionStatus.COMPLETED:
        if analysis.confidence_score >= 60:
            well.append(f"The automatic analysis was {analysis.confidence_score}% confident.")
    elif analysis is not None:
        badly.append("The LLM analysis was not available; the offline analyser answered.")
    if any(item.type == EventType.REOPENED for item in facts.timeline):
        badly.append("The incident reopened after a resolve (the alert flapped).")
    return Narrative(summary=summary, went_well=well, went_badly=badly)


def incident_resolver(facts: PostmortemFacts) -> str:
    resolved = [i for i in facts.timeline if i.type == EventType.RESOLVED]
    return resolved[-1].actor if resolved else "—"


def run_outcome(run: RunFact) -> str:
    if run.ok is None:
        return f"not finished ({run.phase})"
    verdict = "succeeded" if run.ok else "failed"
    if run.verified is not None:
        verdict += ", verified" if run.verified else ", verification failed"
    return verdict


# ---------------------------------------------------------------------- grounding


def ground(answer: PostmortemNarrative, known: set[str]) -> tuple[Narrative, list[str]]:
    """Drop every statement that cites a timeline item that does not exist (in `refs` or in
    its text); returns the narrative and the refs that were invented."""
    invented: list[str] = []

    def keep(statements: Sequence[Statement]) -> list[str]:
        kept = []
        for statement in statements:
            cited = {ref.strip().upper() for ref in statement.refs} | set(
                _REF.findall(statement.text)
            )
            unknown = sorted(cited - known)
            if unknown:
                invented.extend(ref for ref in unknown if ref not in invented)
                continue
            refs = ", ".join(sorted(cited, key=_ref_number))
            kept.append(statement.text.strip() + (f" ({refs})" if refs else ""))
        return kept

    narrative = Narrative(
        summary=keep(answer.summary),
        went_well=keep(answer.went_well),
        went_badly=keep(answer.went_badly),
    )
    return narrative, sorted(invented, key=_ref_number)


def _ref_number(ref: str) -> int:
    return int(ref[1:]) if ref[1:].isdigit() else 0


# ---------------------------------------------------------------------- the LLM


def _run_view(run: RunFact) -> dict[str, str]:
    return {"action": run.action, "approved_by": run.approved_by, "outcome": run_outcome(run)}


def build_messages(facts: PostmortemFacts, redactor: Redactor) -> list[dict[str, str]]:
    """System + user messages; people appear as "person A", never by name. Each timeline
    message is scrubbed as it comes in (the incident's own text was at ingestion); the rendered
    text is not scrubbed again as a whole, where one item's end and the next one's ref meet."""
    people = {who: f"person {chr(ord('A') + n % 26)}" for n, who in enumerate(facts.people())}

    def anonymous(text: str) -> str:
        for who, label in people.items():
            text = text.replace(who, label)
        return redactor.redact(text)

    timeline = [
        {
            "ref": item.ref,
            "type": item.type,
            "role": people.get(item.actor, item.actor),
            "message": anonymous(item.message),
        }
        for item in facts.timeline
    ]
    incident = facts.incident
    boundary = evidence_boundary(Evidence(), incident.model_dump_json(), repr(timeline))
    system = render("postmortem_system.md", boundary=boundary)
    user = render(
        "postmortem_user.md",
        boundary=boundary,
        incident=incident,
        status=incident.status.value,
        analysis=incident.analysis,
        runs=[_run_view(run) for run in facts.runs],
        timeline=timeline,
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def narrate(
    facts: PostmortemFacts,
    gateway: LLMGateway,
    *,
    max_json_retries: int,
    redactor: Redactor,
) -> tuple[Narrative | None, list[str]]:
    """The LLM's grounded narrative, or None with why it could not be had."""
    messages = build_messages(facts, redactor)

    def repair(errors: Sequence[str], bad_answer: str) -> dict[str, str]:
        text = render(
            "postmortem_repair.md",
            errors=[redactor.redact(error) for error in errors],
            bad_answer=redactor.redact(bad_answer),
        )
        return {"role": "user", "content": text}

    answered = await ask_json(
        gateway,
        messages,
        PostmortemNarrative,
        name=SCHEMA_NAME,
        retries=max_json_retries,
        repair=repair,
    )
    if answered.value is None:
        log.warning("postmortem llm gave no narrative", failure=str(answered.failure)[:300])
        if answered.gave_nothing:
            kind = str(answered.failure).split(":", 1)[0]
            return None, [f"the LLM could not be used: {kind}"]
        attempts = len(answered.tries)
        return None, [
            f"the LLM gave no valid answer in {attempts} attempts; last: {answered.failure}"
        ]
    narrative, invented = ground(answered.value, facts.refs)
    notes = []
    if invented:
        notes.append(
            "Statements citing timeline items that do not exist were left out: "
            + ", ".join(invented)
            + "."
        )
    return narrative, notes


# ---------------------------------------------------------------------- the document


def render_markdown(
    facts: PostmortemFacts, narrative: Narrative, *, written_by: str, notes: Sequence[str]
) -> str:
    incident = facts.incident
    acknowledged = time_text(incident.acknowledged_at)
    if incident.acknowledged_by:
        acknowledged += f" by {incident.acknowledged_by}"
    resolved = time_text(incident.resolved_at)
    if incident.resolved_at is not None:
        resolved += f" by {incident_resolver(facts)}"
    timeline = [
        {
            "ref": item.ref,
            "at": time_text(item.at),
            "type": item.type,
            "actor": item.actor,
            "message": item.message,
        }
        for item in facts.timeline
    ]
    return render(
        "postmortem.md",
        incident=incident,
        written_by=written_by,
        notes=list(notes),
        summary=narrative.summary,
        status=incident.status.value,
        started=time_text(facts.started_at),
        opened=time_text(incident.created_at),
        acknowledged=acknowledged,
        resolved=resolved,
        time_to_acknowledge=duration(facts.acknowledge_s),
        time_to_resolve=duration(facts.resolve_s),
        impact=duration(facts.impact_s),
        related=", ".join(f"#{i}" for i in incident.related),
        timeline=timeline,
        omitted=facts.omitted_events,
        analysis=incident.analysis,
        runs=[_run_view(run) for run in facts.runs],
        went_well=narrative.went_well,
        went_badly=narrative.went_badly,
    )


@dataclass(frozen=True)
class Written:
    """The narrative, who wrote it, and what the reader should know about how."""

    narrative: Narrative
    by: str  # LLM or TEMPLATE
    byline: str
    notes: list[str]


@dataclass(kw_only=True, eq=False)
class PostmortemService:
    """`incidents.ports.Postmortems`: drafts on demand (the API, `/incident postmortem ID`)."""

    engine: AsyncEngine
    writer: Writer
    gateway: LLMGateway | None
    redactor: Redactor
    max_json_retries: int

    async def draft(self, incident_id: int, *, actor: str) -> PostmortemDraft | None:
        async with self.engine.connect() as conn:
            facts = await gather(conn, incident_id, self.redactor.redact_value)
        if facts is None:
            return None
        written = await self.write(facts)
        markdown = render_markdown(
            facts, written.narrative, written_by=written.byline, notes=written.notes
        )
        what = "LLM narrative" if written.by == LLM else "template"
        await self.writer.run(
            partial(
                record_event,
                incident_id=incident_id,
                kind=EventType.POSTMORTEM_DRAFTED,
                actor=actor,
                message=f"Postmortem drafted ({what})",
                data={"written_by": written.by, "chars": len(markdown), "notes": written.notes},
            )
        )
        return PostmortemDraft(incident_id, markdown, written.by)

    async def write(self, facts: PostmortemFacts) -> Written:
        gateway = self.gateway
        if gateway is None or not gateway.enabled:
            return _template(facts, "no LLM is configured")
        narrative, notes = await narrate(
            facts, gateway, max_json_retries=self.max_json_retries, redactor=self.redactor
        )
        if narrative is None:
            return _template(facts, notes[0])
        if not narrative.summary:
            return _template(facts, "every summary statement of the LLM cited unknown items")
        byline = (
            f"Drafted by Firebreak: summary and lessons written by the LLM "
            f"({gateway.describe()}) from the timeline."
        )
        return Written(narrative, LLM, byline, notes)


def _template(facts: PostmortemFacts, why: str) -> Written:
    byline = f"Drafted by Firebreak from its template ({why})."
    return Written(template_narrative(facts), TEMPLATE, byline, [])


__all__ = [
    "PostmortemNarrative",
    "PostmortemService",
    "Written",
    "ground",
    "narrate",
    "render_markdown",
    "template_narrative",
]
