"""The reasoning agent: alert + evidence in, a grounded `Analysis` out.

`reason()` is a plain async function; the LangGraph node (`analyse`) calls it. Grounding lives
in agents/grounding.py, thread questions in agents/questions.py.

The loop (self-healing structured output):
1. Render `rca_system.md` + `rca_user.md` from the *redacted* alert and evidence, and scrub the
   rendered messages once more: no secret ever reaches the LLM request.
2. `gateway.complete_json(messages, strict_json_schema())`, then
   `RootCauseAnalysis.model_validate_json` on the raw text (a single surrounding Markdown code
   fence is tolerated).
3. An invalid answer (not JSON, or not the schema) is sent back: the next attempt is the same
   conversation plus `rca_repair.md`, quoting the validation errors and the bad answer. At most
   `max_json_retries` such retries (so `1 + max_json_retries` LLM calls).
4. Grounding (below), then an `Analysis` with `execution_status=COMPLETED`, one `Attempt` per
   LLM call and the cited evidence resolved to `EvidenceItem`s.

Execution status:
- `COMPLETED`: the configured analyser produced the analysis. When the configured provider is
  `offline` (or no gateway is given) the deterministic analyser IS the configured analysis, so
  it is COMPLETED with `provider="offline"`.
- `RECOVERED_FALLBACK`: an LLM was configured but gave no usable answer (retries exhausted,
  circuit breaker open, unreachable, timed out, request refused): the deterministic analyser
  answered instead. The attempts record every LLM call and the offline one.
- `FAILED`: nothing usable could be produced (the deterministic analyser itself raised).
Every offline analysis is marked: `root_cause` and `reasoning` start with "[Offline analysis] ",
and after a fallback the reasoning says why the LLM was not used.

Every answer, LLM or offline, is grounded (agents/grounding.py) before it is returned.

After follow-up tool calls (agents/followup.py) the evidence holds their results too, and the
prompt lists the calls made. When the loop ended with the model's own answer (it answered
without calling a tool), that answer is attempt 1 (`Opening`), validated and repaired like any;
when it ended in an LLM error, that error is attempt 1 and the offline analyser answers.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from langgraph.runtime import Runtime as GraphRuntime
from pydantic import ValidationError

from firebreak.agents.context import Deps
from firebreak.agents.evidence import gathered
from firebreak.agents.grounding import fit, ground
from firebreak.agents.offline import analyze_offline
from firebreak.agents.prompts import evidence_boundary, fmt_value, oneline, render
from firebreak.agents.schema import RootCauseAnalysis, strict_json_schema
from firebreak.agents.state import InvestigationState
from firebreak.incidents.postmortem import duration_text
from firebreak.store.schemas import (
    Analysis,
    Attempt,
    ExecutionStatus,
    HistoryRef,
    RcaBody,
)
from firebreak.tools.config import RemediationAction
from firebreak.tools.llm import LLMError, LLMGateway
from firebreak.tools.models import AlertContext, Evidence
from firebreak.tools.redact import Redactor

__all__ = [
    "OFFLINE_PREFIX",
    "Opening",
    "build_rca_messages",
    "build_repair_message",
    "rca_boundary",
    "reason",
    "safe_alert",
]

log = structlog.get_logger(__name__)

OFFLINE_PREFIX = "[Offline analysis] "
UNKNOWN_REF_PENALTY = 15
UNGROUNDED_CONFIDENCE_CAP = 30
OFFLINE_PROVIDER = "offline"

_LIMITS = {name: field.metadata for name, field in RcaBody.model_fields.items()}
_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(?P<body>.*?)\n?\s*```\s*$", re.DOTALL)


# --------------------------------------------------------------------------------------------
# Prompts


def safe_alert(alert: AlertContext, redactor: Redactor) -> AlertContext:
    """The alert with its labels and annotations scrubbed, as every prompt shows it."""
    return alert.model_copy(
        update={
            "labels": redactor.redact_value(dict(alert.labels)),
            "annotations": redactor.redact_value(dict(alert.annotations)),
        }
    )


def rca_boundary(alert: AlertContext, evidence: Evidence) -> str:
    """The marker id of the RCA prompt's data blocks (and of the tool results answering it)."""
    return evidence_boundary(evidence, alert.model_dump_json())


def build_rca_messages(
    alert: AlertContext,
    evidence: Evidence,
    actions: Sequence[RemediationAction] = (),
    redactor: Redactor | None = None,
    *,
    tools: int = 0,
    followups: Sequence[Mapping[str, Any]] = (),
    history: Sequence[HistoryRef] = (),
) -> list[dict[str, str]]:
    """System + user messages for one investigation, scrubbed. `evidence` should already be
    redacted (it is scrubbed again as part of the rendered text anyway). `tools`: how many
    follow-up calls the request offers (the system message then explains them); `followups`:
    the calls made already (`tool`, `arguments`, `refs`, `error`), listed with the evidence;
    `history`: earlier incidents like this one, shown as evidence `H1`…"""
    redactor = redactor or Redactor()
    boundary = rca_boundary(alert, evidence)
    system = render("rca_system.md", boundary=boundary, tools=tools)
    user = render(
        "rca_user.md",
        alert=alert,
        logs=evidence.logs,
        metrics=evidence.metrics,
        kubernetes=evidence.kubernetes,
        reports=evidence.reports,
        actions=list(actions),
        followups=list(followups),
        boundary=boundary,
        history=history_lines(history),
    )
    return [
        {"role": "system", "content": redactor.redact(system)},
        {"role": "user", "content": redactor.redact(user)},
    ]


def history_lines(history: Sequence[HistoryRef]) -> list[str]:
    """One evidence line per earlier incident: its root cause and how it ended (facts). A cause
    a person confirmed or corrected says so: the model should trust it over an unjudged one."""
    lines = []
    for item in history:
        ended = "not resolved"
        if item.resolved_at is not None:
            ended = f"resolved by {item.resolved_by or 'unknown'} after "
            ended += duration_text(item.resolve_s)
        fix = item.resolution or "not recorded"
        cause = item.root_cause or "not analysed"
        lines.append(
            f"[{item.ref}] earlier incident #{item.incident_id} ({fmt_value(item.created_at)}): "
            f"{oneline(item.title)} | {cause_label(item)}: {oneline(cause)} | fixed by: "
            f"{oneline(fix)} | {ended}"
        )
    return lines


def cause_label(item: HistoryRef) -> str:
    """ "root cause", "root cause (confirmed)" or "root cause (corrected by a person)"."""
    if item.confirmed is None:
        return "root cause"
    return "root cause (confirmed)" if item.confirmed else "root cause (corrected by a person)"


def build_repair_message(
    errors: Sequence[str], bad_answer: str, redactor: Redactor | None = None
) -> dict[str, str]:
    """The user message asking the model to correct its previous answer."""
    redactor = redactor or Redactor()
    text = render("rca_repair.md", errors=list(errors), bad_answer=bad_answer)
    return {"role": "user", "content": redactor.redact(text)}


def validation_errors(exc: ValidationError) -> list[str]:
    out: list[str] = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"]) or "(answer)"
        if error["type"] == "json_invalid":
            out.append(f"{loc}: {error['msg']}")
            continue
        given = repr(error.get("input"))
        given = given if len(given) <= 80 else given[:77] + "..."
        out.append(f"{loc}: {error['msg']} (got {given})")
    return out or [str(exc).splitlines()[0]]


def unfence(text: str) -> str:
    match = _FENCE.match(text)
    return match.group("body") if match else text


# --------------------------------------------------------------------------------------------
# The agent


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


@dataclass(frozen=True)
class Opening:
    """How the follow-up loop ended, when it ended with the LLM: its answer without a tool
    call (`raw`), or why it gave none (`error`). Either is the RCA's first attempt."""

    raw: str | None = None
    error: str | None = None
    elapsed_ms: float = 0.0


async def _ask(
    gateway: LLMGateway, messages: list[dict[str, str]], schema: dict[str, Any]
) -> tuple[str | None, str | None, float]:
    """(raw answer, None, ms), or (None, why the LLM gave nothing, ms)."""
    started = time.perf_counter()
    try:
        raw = await gateway.complete_json(messages, schema)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # LLMError, or a bug: either way the LLM gave nothing
        kind = exc.kind if isinstance(exc, LLMError) else type(exc).__name__
        return None, f"{kind}: {exc}", _elapsed_ms(started)
    return raw, None, _elapsed_ms(started)


async def reason(
    alert: AlertContext,
    evidence: Evidence,
    gateway: LLMGateway | None,
    *,
    max_json_retries: int,
    actions: Sequence[RemediationAction] = (),
    redactor: Redactor | None = None,
    opening: Opening | None = None,
    followups: Sequence[Mapping[str, Any]] = (),
    history: Sequence[HistoryRef] = (),
) -> Analysis:
    """Root-cause analysis of `alert` from `evidence`; see the module doc for the rules.
    `opening`: the follow-up loop's closing answer, used as attempt 1; `followups`: the tool
    calls it made (listed in the prompt); `history` (earlier incidents like this one) is shown
    as `H` refs and kept in the analysis."""
    history = list(history)
    redactor = redactor or Redactor()
    shown_alert = safe_alert(alert, redactor)
    safe_evidence = redactor.redact_evidence(evidence)
    attempts: list[Attempt] = []

    if gateway is None or not gateway.enabled:
        offline = _offline(shown_alert, safe_evidence, actions, attempts, failure=None)
        return offline.model_copy(update={"history": history})

    base = build_rca_messages(
        shown_alert, safe_evidence, actions, redactor, followups=followups, history=history
    )
    schema = strict_json_schema()
    messages = base
    failure = "no attempt was made"
    for number in range(1, max_json_retries + 2):
        if number == 1 and opening is not None:
            raw, error, elapsed_ms = opening.raw, opening.error, opening.elapsed_ms
        else:
            raw, error, elapsed_ms = await _ask(gateway, messages, schema)
        if raw is None:
            failure = error or "no answer"
            attempts.append(
                Attempt(
                    number=number,
                    provider=gateway.provider,
                    ok=False,
                    error=failure[:1000],
                    elapsed_ms=elapsed_ms,
                )
            )
            log.warning("llm_unavailable", provider=gateway.provider, error=failure[:300])
            break
        try:
            rca = RootCauseAnalysis.model_validate_json(unfence(raw))
        except ValidationError as exc:
            errors = validation_errors(exc)
            failure = "invalid answer: " + "; ".join(errors)
            attempts.append(
                Attempt(
                    number=number,
                    provider=gateway.provider,
                    ok=False,
                    error=failure[:1000],
                    elapsed_ms=elapsed_ms,
                )
            )
            log.info("llm_invalid_answer", attempt=number, errors=errors[:5])
            messages = [*base, build_repair_message(errors, raw, redactor)]
            continue
        attempts.append(
            Attempt(number=number, provider=gateway.provider, ok=True, elapsed_ms=elapsed_ms)
        )
        grounded = ground(rca, safe_evidence, actions, history)
        return Analysis(
            **grounded.body,
            execution_status=ExecutionStatus.COMPLETED,
            attempts=attempts,
            evidence=grounded.items,
            provider=gateway.provider,
            model=gateway.model,
            created_at=datetime.now(UTC),
            history=history,
        )
    else:
        failure = f"no valid answer after {max_json_retries + 1} attempts (last: {failure})"

    note = f"The LLM ({gateway.describe()}) could not be used: {failure}"
    fallback = _offline(shown_alert, safe_evidence, actions, attempts, failure=note)
    return fallback.model_copy(update={"history": history})


def _offline(
    alert: AlertContext,
    evidence: Evidence,
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
        rca = analyze_offline(alert, evidence)
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
    calls = state.get("calls", [])
    ended = state.get("followup") or {}
    opening = None
    if ended.get("raw") is not None or ended.get("error") is not None:
        opening = Opening(
            raw=ended.get("raw"), error=ended.get("error"), elapsed_ms=ended.get("elapsed_ms", 0)
        )
    analysis = await reason(
        AlertContext.model_validate(state["alert"]),
        gathered(state),
        deps.gateway,
        max_json_retries=settings.max_json_retries,
        actions=settings.actions,
        redactor=deps.redactor,
        opening=opening,
        followups=[
            {"tool": c["tool"], "arguments": c["arguments"], "refs": c["refs"], "error": c["error"]}
            for c in calls
        ],
        history=[HistoryRef.model_validate(item) for item in state.get("history", [])],
    )
    analysis = analysis.model_copy(update={"tool_calls": len(calls)})
    return {"analysis": analysis.model_dump(mode="json")}
