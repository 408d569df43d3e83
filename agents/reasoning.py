"""The reasoning agent: alert + evidence in, a grounded, honestly scored `Analysis` out.

`reason()` is a plain async function; the LangGraph node (`analyse`) calls it. Grounding lives
in agents/grounding.py, the leads in agents/leads.py, thread questions in agents/questions.py.

1. The leads (Firebreak's own findings: the change, the first error, the metrics that moved)
   are computed from the evidence: the same ones the offline analyzer writes from.
2. `rca_system.md` + `rca_user.md` are rendered from the *redacted* alert and evidence, with the
   leads and the earlier incidents (`H` refs), and asked for through the one self-healing loop
   (tools/llm_json.py: constrained JSON, problems fed back, never the same request twice). The
   follow-up loop's closing answer, when it ended with one, is the first attempt.
3. The answer is grounded, and then judged:
   - It must rest on the evidence: cite something gathered, name more than the alert's own
     symptom, and cite evidence that speaks of what it names. An answer that does not is set
     aside (`Analysis.set_aside` keeps it and why) and the offline analysis answers instead,
     RECOVERED_FALLBACK. Why not keep it with a capped confidence: at 2 AM one answer is read,
     and Firebreak's own rules are grounded by construction; a confident wrong cause on the
     card costs more than a plainer right one.
   - Its confidence is the model's own, capped by what bears it out: with the leads it agrees
     with (`50 + 40 x agreeing / leads`), at 60 when the rules found nothing to compare with,
     at 50 when most of what it cites does not speak of its cause (a padded list), and at 40
     when it contradicts every lead, when the card also shows the offline cause
     (`Analysis.dissent`). Its evidence is what it cites that speaks of its cause.

Execution status:
- `COMPLETED`: the configured analyser produced a grounded analysis. With `llm.provider:
  offline` (or no gateway) the deterministic analyser IS the configured analysis.
- `RECOVERED_FALLBACK`: an LLM was configured but gave no usable answer (retries exhausted,
  circuit open, unreachable, timed out, refused, or set aside as unsupported): the offline
  analyser answered, and its reasoning says why.
- `FAILED`: nothing usable could be produced (the offline analyser itself raised).
Every offline analysis is marked: `root_cause` and `reasoning` start with "[Offline analysis] ".
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog
from langgraph.runtime import Runtime as GraphRuntime

from firebreak.agents.claims import parrots, symptom_terms
from firebreak.agents.context import Deps
from firebreak.agents.conversation import chat_turns
from firebreak.agents.evidence import gathered
from firebreak.agents.followup import TOOLS_WERE_OFFERED, offered_tools
from firebreak.agents.grounding import Grounded, fit, ground
from firebreak.agents.leads import Findings, find
from firebreak.agents.offline import analyze_offline
from firebreak.agents.rca_prompt import (
    answer_now_message,
    build_rca_messages,
    build_repair_message,
    safe_alert,
)
from firebreak.agents.schema import RootCauseAnalysis, rca_schema
from firebreak.agents.state import InvestigationState, LoopEnd
from firebreak.store.schemas import (
    Analysis,
    Attempt,
    ExecutionStatus,
    HistoryRef,
    SetAside,
)
from firebreak.tools.config import RemediationAction
from firebreak.tools.llm import JSON_SCHEMA_NAME, Completion, LLMError, LLMGateway
from firebreak.tools.llm_json import Answered, ask_json
from firebreak.tools.models import AlertContext, Evidence
from firebreak.tools.redact import Redactor

__all__ = ["OFFLINE_PREFIX", "opening_of", "reason"]

log = structlog.get_logger(__name__)

OFFLINE_PREFIX = "[Offline analysis] "
OFFLINE_PROVIDER = "offline"
CONTRADICTS_CAP = 40
NO_LEADS_CAP = 60
PADDED_CAP = 50  # when most of what it cites does not speak of its cause
PARROT_CAP = 50  # when it only repeats a lead: no confirmation from a second reader
AGREEMENT_FLOOR, AGREEMENT_SPAN = 40, 40  # cap = floor + span * share of leads agreeing
WEAK_LEADS = ("unlinked_change",)  # a change nothing ties to what failed: a red herring's look

_UNSUPPORTED = {
    "no_evidence": "it cites no evidence that was gathered",
    "symptom": "it names only the alert's own symptom, not a cause",
    "unrelated": "the evidence it cites does not speak of the cause it names",
}


def opening_of(ended: LoopEnd | None) -> Completion | LLMError | None:
    """How the follow-up loop ended, as the RCA's first attempt: the model's answer without a
    tool call, the LLM's failure, or nothing (the loop was off or hit its limit)."""
    if ended is None:
        return None
    if ended.raw is not None:
        return Completion(
            text=ended.raw,
            finish_reason=ended.finish_reason,
            prompt_tokens=ended.prompt_tokens,
            completion_tokens=ended.completion_tokens,
            elapsed_s=ended.elapsed_ms / 1000,
        )
    if ended.error is not None:
        return LLMError(ended.error, kind=ended.error.split(":", 1)[0])
    return None


# --------------------------------------------------------------------------------------------
# The agent


async def reason(
    alert: AlertContext,
    evidence: Evidence,
    gateway: LLMGateway | None,
    *,
    max_json_retries: int,
    actions: Sequence[RemediationAction] = (),
    redactor: Redactor | None = None,
    opening: Completion | LLMError | None = None,
    history: Sequence[HistoryRef] = (),
    shown: Evidence | None = None,
    conversation: Sequence[Mapping[str, Any]] = (),
    tools: Sequence[Mapping[str, Any]] = (),
    tool_limit: int = 0,
) -> Analysis:
    """Root-cause analysis of `alert` from `evidence`; see the module doc for the rules.

    After the follow-up loop, `shown` is the evidence its prompt showed (`evidence` adds what
    the calls found), `conversation` the calls and their results, `tools` the specs offered
    (at most `tool_limit` calls), and `opening` its closing answer (or failure), attempt 1:
    the RCA is asked for in that same conversation, so a server reuses what it computed for
    it. `history` (earlier incidents like this one) is shown as `H` refs and kept."""
    history = list(history)
    redactor = redactor or Redactor()
    shown_alert = safe_alert(alert, redactor)
    safe_evidence = redactor.redact_evidence(evidence)
    prompt_evidence = redactor.redact_evidence(shown) if shown is not None else safe_evidence
    findings = find(shown_alert, prompt_evidence)
    leads = findings.leads()
    kept: dict[str, Any] = {"history": history, "leads": leads}

    if gateway is None or not gateway.enabled:
        offline = _offline(shown_alert, prompt_evidence, findings, actions, [], failure=None)
        return offline.model_copy(update=kept)

    messages = [
        *build_rca_messages(
            shown_alert,
            prompt_evidence,
            actions,
            redactor,
            tools=tool_limit if tools else 0,
            history=history,
            leads=leads,
        ),
        *conversation,
    ]
    if tools and opening is None:
        messages.append(answer_now_message())
    answered = await ask_json(
        gateway,
        messages,
        RootCauseAnalysis,
        name=JSON_SCHEMA_NAME,
        retries=max_json_retries,
        repair=partial(build_repair_message, redactor=redactor),
        opening=opening,
        tools=tools,
        schema=rca_schema(
            [*safe_evidence.refs(), *(item.ref for item in history)],
            [a.name for a in actions],
            bounded=await gateway.enforces_lengths(),
        ),
    )
    attempts = _attempts(answered, gateway.provider)
    kept["prompt_tokens"] = answered.prompt_tokens or await _counted(gateway, messages)
    rca = answered.value
    if rca is None:
        log.warning("llm_unavailable", provider=gateway.provider, error=str(answered.failure)[:300])
        note = f"The LLM ({gateway.describe()}) could not be used: {answered.failure}"
        fallback = _offline(shown_alert, prompt_evidence, findings, actions, attempts, failure=note)
        return fallback.model_copy(update=kept)

    grounded = ground(
        rca, safe_evidence, actions, history, leads=leads, symptoms=symptom_terms(shown_alert)
    )
    kept["grounding"] = grounded.report()
    if grounded.support != "supported":
        why = _UNSUPPORTED[grounded.support]
        set_aside = SetAside(
            root_cause=rca.root_cause[:500], confidence_score=rca.confidence_score, why=why
        )
        note = f'The LLM\'s answer ("{set_aside.root_cause[:200]}") was set aside: {why}'
        log.info("llm_answer_set_aside", why=grounded.support, root_cause=rca.root_cause[:200])
        fallback = _offline(shown_alert, prompt_evidence, findings, actions, attempts, failure=note)
        return fallback.model_copy(update={**kept, "set_aside": set_aside})

    body, dissent = _calibrated(grounded, shown_alert, prompt_evidence, findings)
    return Analysis(
        **body,
        execution_status=ExecutionStatus.COMPLETED,
        attempts=attempts,
        evidence=[item for item in grounded.items if item.ref in grounded.relevant],
        provider=gateway.provider,
        model=gateway.model,
        created_at=datetime.now(UTC),
        dissent=dissent,
        **kept,
    )


def _attempts(answered: Answered[RootCauseAnalysis], provider: str) -> list[Attempt]:
    return [
        Attempt(
            number=t.number,
            provider=provider,
            ok=t.ok,
            error=t.error,
            elapsed_ms=t.elapsed_ms,
            constrained=t.constrained,
            prompt_tokens=t.prompt_tokens,
        )
        for t in answered.tries
    ]


async def _counted(gateway: LLMGateway, messages: Sequence[Mapping[str, Any]]) -> int:
    """The prompt's tokens when no answer measured them (the LLM gave none)."""
    return await gateway.count_tokens("\n".join(str(m.get("content") or "") for m in messages))


def _calibrated(
    grounded: Grounded,
    alert: AlertContext,
    evidence: Evidence,
    findings: Findings,
) -> tuple[dict[str, Any], str | None]:
    """The grounded body with its confidence capped by what bears it out, and the offline
    root cause when the answer contradicts every lead."""
    body = dict(grounded.body)
    comparable = [lead for lead in grounded.comparable if lead.kind not in WEAK_LEADS]
    agreeing = [lead for lead in grounded.agreeing if lead.kind not in WEAK_LEADS]
    dissent = None
    if not comparable:
        cap, why = NO_LEADS_CAP, "Firebreak's rules found no lead to compare it with"
    elif not agreeing:
        cap, why = CONTRADICTS_CAP, "it agrees with none of the leads Firebreak's rules found"
        if grounded.agreeing:
            why = "it agrees only with a change nothing ties to what failed"
        dissent = _mark("root_cause", analyze_offline(alert, evidence, findings).root_cause)
    else:
        share = len(agreeing) / len(comparable)
        cap = AGREEMENT_FLOOR + round(AGREEMENT_SPAN * share)
        numbers = ", ".join(str(lead.number) for lead in agreeing)
        why = f"it agrees with leads {numbers} of {len(comparable)}"
    if parrots(grounded.body["root_cause"], grounded.comparable) and cap > PARROT_CAP:
        cap, why = PARROT_CAP, "it repeats one of Firebreak's own leads instead of explaining"
    padding = len(grounded.items) - len(grounded.relevant)
    if padding > len(grounded.relevant) and cap > PADDED_CAP:
        cap = PADDED_CAP
        why = f"{padding} of the {len(grounded.items)} items it cites do not speak of it"
    if body["confidence_score"] > cap:
        body["confidence_score"] = cap
        body["reasoning"] = fit(
            "reasoning",
            body["reasoning"],
            suffix=f" [Grounding] Confidence capped at {cap}: {why}.",
        )
    return body, dissent


def _offline(
    alert: AlertContext,
    evidence: Evidence,
    findings: Findings,
    actions: Sequence[RemediationAction],
    attempts: list[Attempt],
    *,
    failure: str | None,
) -> Analysis:
    """The deterministic analysis: COMPLETED when it is the configured analyser (`failure` is
    None), RECOVERED_FALLBACK after an LLM failure, FAILED if it raises too."""
    number = len(attempts) + 1
    started = time.perf_counter()
    try:
        rca = analyze_offline(alert, evidence, findings)
        grounded = ground(rca, evidence, actions)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        attempts.append(
            Attempt(
                number=number,
                provider=OFFLINE_PROVIDER,
                ok=False,
                error=error[:1000],
                elapsed_ms=_elapsed_ms(started),
            )
        )
        log.error("offline_analysis_failed", error=error[:300])
        return _failed(attempts, [failure, f"the offline analyser failed: {error}"])
    attempts.append(
        Attempt(number=number, provider=OFFLINE_PROVIDER, ok=True, elapsed_ms=_elapsed_ms(started))
    )

    body = grounded.body
    why = (
        ""
        if failure is None
        else failure.rstrip(".") + ". This analysis comes from "
        "Firebreak's deterministic rules instead. "
    )
    body["root_cause"] = _mark("root_cause", body["root_cause"])
    body["reasoning"] = _mark("reasoning", why + _unmark(body["reasoning"]))
    return Analysis(
        **body,
        execution_status=(
            ExecutionStatus.COMPLETED if failure is None else ExecutionStatus.RECOVERED_FALLBACK
        ),
        attempts=attempts,
        evidence=grounded.items,
        provider=OFFLINE_PROVIDER,
        model="",
        created_at=datetime.now(UTC),
    )


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _unmark(text: str) -> str:
    return text[len(OFFLINE_PREFIX) :] if text.startswith(OFFLINE_PREFIX) else text


def _mark(field: str, text: str) -> str:
    return fit(field, _unmark(text), prefix=OFFLINE_PREFIX)


def _failed(attempts: list[Attempt], problems: Sequence[str | None]) -> Analysis:
    detail = "; ".join(p for p in problems if p)
    return Analysis(
        root_cause="Unknown: the automatic analysis failed.",
        reasoning=fit("reasoning", f"No analysis could be produced: {detail}"),
        mitigation="Investigate manually: check the alert's dashboards, recent deploys and the "
        "service logs.",
        prevention="Fix the analysis failure reported in the reasoning so the next incident "
        "gets an automatic analysis.",
        recommendation="Start a manual investigation.",
        confidence_score=0,
        execution_status=ExecutionStatus.FAILED,
        attempts=attempts,
        evidence=[],
        provider=OFFLINE_PROVIDER,
        model="",
        created_at=datetime.now(UTC),
    )


async def analyse(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    """The graph node: the reasoning agent over the joined, redacted evidence and what the
    follow-up calls found; the loop's closing answer (if any) is the first attempt."""
    deps = runtime.context
    settings = deps.settings
    ended = state.followup
    offered = ended is not None and ended.ended in TOOLS_WERE_OFFERED
    analysis = await reason(
        state.opened(),
        gathered(state),
        deps.gateway,
        max_json_retries=settings.max_json_retries,
        actions=settings.actions,
        redactor=deps.redactor,
        opening=opening_of(ended),
        history=state.history,
        shown=state.evidence,
        conversation=chat_turns(state.messages),
        tools=offered_tools(settings) if offered else [],
        tool_limit=settings.investigation.max_tool_calls,
    )
    analysis = analysis.model_copy(update={"tool_calls": len(state.calls)})
    if analysis.prompt_tokens is not None:
        deps.prompt_tokens.observe(analysis.prompt_tokens)
    return {"analysis": analysis}
