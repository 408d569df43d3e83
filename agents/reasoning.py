"""The reasoning agent's core: alert + evidence in, a grounded `Analysis` out.

`reason()` is a plain async function; the LangGraph node calls it. `answer_question()` answers
an engineer's question in the incident thread.

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

Grounding rules (applied to LLM and offline answers alike):
- Every cited ref must be one of `evidence.refs()` (matched case-insensitively). Unknown refs
  are dropped, and each one lowers `confidence_score` by `UNKNOWN_REF_PENALTY` (15) points: an
  invented citation is evidence the model is confabulating.
- An analysis left citing no gathered evidence is capped at `UNGROUNDED_CONFIDENCE_CAP` (30).
- A proposed remediation is dropped unless its action is on the allowlist (`actions`, by exact
  name), it gives each declared parameter exactly once, no undeclared parameter, and every
  value matches the parameter's `pattern` in full.
- What grounding changed is appended to the reasoning ("[Grounding] ...").
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from langgraph.runtime import Runtime as GraphRuntime
from pydantic import ValidationError

from firebreak.agents.context import Deps
from firebreak.agents.offline import analyze_offline
from firebreak.agents.prompts import evidence_boundary, render
from firebreak.agents.schema import RootCauseAnalysis, strict_json_schema
from firebreak.agents.state import InvestigationState
from firebreak.config import RemediationAction
from firebreak.store.schemas import (
    Analysis,
    Attempt,
    EvidenceItem,
    ExecutionStatus,
    RcaBody,
    RemediationProposal,
)
from firebreak.tools.llm import LLMError, LLMGateway
from firebreak.tools.models import AlertContext, Evidence, LogLine, MetricReading
from firebreak.tools.redact import Redactor

__all__ = [
    "OFFLINE_PREFIX",
    "UNGROUNDED_CONFIDENCE_CAP",
    "UNKNOWN_REF_PENALTY",
    "Grounded",
    "answer_question",
    "build_rca_messages",
    "build_repair_message",
    "ground",
    "reason",
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


def build_rca_messages(
    alert: AlertContext,
    evidence: Evidence,
    actions: Sequence[RemediationAction] = (),
    redactor: Redactor | None = None,
) -> list[dict[str, str]]:
    """System + user messages for one investigation, scrubbed. `evidence` should already be
    redacted (it is scrubbed again as part of the rendered text anyway)."""
    redactor = redactor or Redactor()
    boundary = evidence_boundary(evidence, alert.model_dump_json())
    system = render("rca_system.md", boundary=boundary)
    user = render(
        "rca_user.md",
        alert=alert,
        logs=evidence.logs,
        metrics=evidence.metrics,
        reports=evidence.reports,
        actions=list(actions),
        boundary=boundary,
    )
    return [
        {"role": "system", "content": redactor.redact(system)},
        {"role": "user", "content": redactor.redact(user)},
    ]


def build_repair_message(
    errors: Sequence[str], bad_answer: str, redactor: Redactor | None = None
) -> dict[str, str]:
    """The user message asking the model to correct its previous answer."""
    redactor = redactor or Redactor()
    text = render("rca_repair.md", errors=list(errors), bad_answer=bad_answer)
    return {"role": "user", "content": redactor.redact(text)}


def _validation_errors(exc: ValidationError) -> list[str]:
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


def _unfence(text: str) -> str:
    match = _FENCE.match(text)
    return match.group("body") if match else text


# --------------------------------------------------------------------------------------------
# Grounding


class Grounded:
    """The outcome of grounding: the corrected body, cited items and what was changed."""

    def __init__(self, body: dict[str, Any], items: list[EvidenceItem], notes: list[str]):
        self.body = body
        self.items = items
        self.notes = notes


def _metric_text(reading: MetricReading) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(reading.series.items()) if k != "__name__")

    def num(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    changed = f", changed at {reading.changed_at.isoformat()}" if reading.changed_at else ""
    return (
        f"{reading.query}{{{labels}}} baseline={num(reading.baseline)} "
        f"current={num(reading.current)} peak={num(reading.peak)}{changed}"
    )


def _log_text(line: LogLine) -> str:
    when = line.timestamp.isoformat() if line.timestamp else ""
    count = f" (x{line.count})" if line.count > 1 else ""
    return f"{when}{count} {line.text}".strip()


def _check_remediation(
    proposal: RemediationProposal, actions: Sequence[RemediationAction]
) -> str | None:
    """None if the proposal is allowed, else why not."""
    action = next((a for a in actions if a.name == proposal.action), None)
    if action is None:
        return f"action {proposal.action!r} is not on the allowlist"
    given: dict[str, str] = {}
    for parameter in proposal.parameters:
        if parameter.name in given:
            return f"parameter {parameter.name!r} given twice"
        given[parameter.name] = parameter.value
    declared = {p.name: p for p in action.parameters}
    extra = sorted(set(given) - set(declared))
    if extra:
        return f"unknown parameters {', '.join(extra)}"
    for name, spec in declared.items():
        if name not in given:
            return f"parameter {name!r} missing"
        try:
            ok = re.fullmatch(spec.pattern, given[name]) is not None
        except re.error:
            ok = False
        if not ok:
            return f"parameter {name!r} does not match {spec.pattern}"
    return None


def ground(
    rca: RootCauseAnalysis, evidence: Evidence, actions: Sequence[RemediationAction] = ()
) -> Grounded:
    """Apply the grounding rules of the module doc to an answer."""
    logs = {line.ref: line for line in evidence.logs if line.ref}
    metrics = {reading.ref: reading for reading in evidence.metrics if reading.ref}
    known = {ref.upper(): ref for ref in (*logs, *metrics)}

    cited: list[str] = []
    unknown: list[str] = []
    for raw in rca.evidence:
        ref = known.get(raw.strip().upper())
        if ref is None:
            if raw.strip() and raw.strip() not in unknown:
                unknown.append(raw.strip())
        elif ref not in cited:
            cited.append(ref)

    notes: list[str] = []
    confidence = rca.confidence_score
    if unknown:
        confidence -= UNKNOWN_REF_PENALTY * len(unknown)
        notes.append(
            f"dropped references to evidence that was never gathered: {', '.join(unknown)} "
            f"(confidence -{UNKNOWN_REF_PENALTY} each)"
        )
    if not cited and confidence > UNGROUNDED_CONFIDENCE_CAP:
        confidence = UNGROUNDED_CONFIDENCE_CAP
        notes.append(
            f"no gathered evidence is cited (confidence capped at {UNGROUNDED_CONFIDENCE_CAP})"
        )
    confidence = max(0, min(100, confidence))

    remediation = rca.remediation
    if remediation is not None:
        problem = _check_remediation(remediation, actions)
        if problem is not None:
            notes.append(f"dropped the proposed remediation: {problem}")
            remediation = None

    items: list[EvidenceItem] = []
    for ref in cited:
        if ref in logs:
            line = logs[ref]
            items.append(
                EvidenceItem(ref=ref, kind="log", source=line.source, text=_log_text(line))
            )
        else:
            reading = metrics[ref]
            items.append(
                EvidenceItem(
                    ref=ref, kind="metric", source=reading.source, text=_metric_text(reading)
                )
            )

    body = rca.model_dump(exclude={"evidence"})
    body["confidence_score"] = confidence
    body["remediation"] = remediation
    if notes:
        body["reasoning"] = _fit(
            "reasoning", body["reasoning"], suffix=" [Grounding] " + "; ".join(notes) + "."
        )
    return Grounded(body, items, notes)


def _limit(field: str) -> int:
    for meta in _LIMITS.get(field, []):
        max_length = getattr(meta, "max_length", None)
        if max_length is not None:
            return int(max_length)
    return 2000


def _fit(field: str, text: str, *, prefix: str = "", suffix: str = "") -> str:
    """prefix + text + suffix within the field's max_length (the text is what gets cut)."""
    limit = _limit(field)
    room = limit - len(prefix) - len(suffix)
    if room < 1:
        return (prefix + text + suffix)[:limit]
    if len(text) > room:
        text = text[: max(0, room - 1)] + "…"
    return prefix + text + suffix


# --------------------------------------------------------------------------------------------
# The agent


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


async def reason(
    alert: AlertContext,
    evidence: Evidence,
    gateway: LLMGateway | None,
    *,
    max_json_retries: int,
    actions: Sequence[RemediationAction] = (),
    redactor: Redactor | None = None,
) -> Analysis:
    """Root-cause analysis of `alert` from `evidence`; see the module doc for the rules."""
    redactor = redactor or Redactor()
    safe_alert = alert.model_copy(
        update={
            "labels": redactor.redact_value(dict(alert.labels)),
            "annotations": redactor.redact_value(dict(alert.annotations)),
        }
    )
    safe_evidence = redactor.redact_evidence(evidence)
    attempts: list[Attempt] = []

    if gateway is None or not gateway.enabled:
        return _offline(safe_alert, safe_evidence, actions, attempts, failure=None)

    base = build_rca_messages(safe_alert, safe_evidence, actions, redactor)
    schema = strict_json_schema()
    messages = base
    failure = "no attempt was made"
    for number in range(1, max_json_retries + 2):
        started = time.perf_counter()
        try:
            raw = await gateway.complete_json(messages, schema)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # LLMError, or a bug: either way the LLM gave nothing
            kind = exc.kind if isinstance(exc, LLMError) else type(exc).__name__
            failure = f"{kind}: {exc}"
            attempts.append(
                Attempt(
                    number=number,
                    provider=gateway.provider,
                    ok=False,
                    error=failure[:1000],
                    elapsed_ms=_elapsed_ms(started),
                )
            )
            log.warning("llm_unavailable", provider=gateway.provider, error=failure[:300])
            break
        try:
            rca = RootCauseAnalysis.model_validate_json(_unfence(raw))
        except ValidationError as exc:
            errors = _validation_errors(exc)
            failure = "invalid answer: " + "; ".join(errors)
            attempts.append(
                Attempt(
                    number=number,
                    provider=gateway.provider,
                    ok=False,
                    error=failure[:1000],
                    elapsed_ms=_elapsed_ms(started),
                )
            )
            log.info("llm_invalid_answer", attempt=number, errors=errors[:5])
            messages = [*base, build_repair_message(errors, raw, redactor)]
            continue
        attempts.append(
            Attempt(
                number=number, provider=gateway.provider, ok=True, elapsed_ms=_elapsed_ms(started)
            )
        )
        grounded = ground(rca, safe_evidence, actions)
        return Analysis(
            **grounded.body,
            execution_status=ExecutionStatus.COMPLETED,
            attempts=attempts,
            evidence=grounded.items,
            provider=gateway.provider,
            model=gateway.model,
            created_at=datetime.now(UTC),
        )
    else:
        failure = f"no valid answer after {max_json_retries + 1} attempts (last: {failure})"

    note = f"The LLM ({gateway.describe()}) could not be used: {failure}"
    return _offline(safe_alert, safe_evidence, actions, attempts, failure=note)


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
    return _fit(field, _unmark(text), prefix=OFFLINE_PREFIX)


def _failed(attempts: list[Attempt], problems: Sequence[str | None]) -> Analysis:
    detail = "; ".join(p for p in problems if p)
    return Analysis(
        root_cause="Unknown: the automatic analysis failed.",
        reasoning=_fit("reasoning", f"No analysis could be produced: {detail}"),
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


# --------------------------------------------------------------------------------------------
# Questions in the incident thread


_WORD = re.compile(r"[A-Za-z0-9_.:/-]{4,}")


async def answer_question(
    question: str,
    incident_summary: str,
    evidence: Evidence,
    analysis: Analysis | None,
    gateway: LLMGateway | None,
    *,
    redactor: Redactor | None = None,
) -> str:
    """An answer for the incident thread, from the stored evidence and analysis. Without a
    usable LLM, a deterministic answer built from the analysis and matching evidence."""
    redactor = redactor or Redactor()
    safe_evidence = redactor.redact_evidence(evidence)
    unavailable = "no LLM is configured"
    if gateway is not None and gateway.enabled:
        boundary = evidence_boundary(safe_evidence, question, incident_summary)
        system = render(
            "question.md",
            incident_summary=incident_summary,
            analysis=analysis,
            logs=safe_evidence.logs,
            metrics=safe_evidence.metrics,
            boundary=boundary,
        )
        messages = [
            {"role": "system", "content": redactor.redact(system)},
            {"role": "user", "content": redactor.redact(question)},
        ]
        try:
            text = (await gateway.complete_text(messages)).strip()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            unavailable = f"the LLM is unavailable ({getattr(exc, 'kind', type(exc).__name__)})"
            log.warning("question_llm_unavailable", error=str(exc)[:300])
        else:
            if text:
                return redactor.redact(text)
            unavailable = "the LLM returned an empty answer"
    return redactor.redact(_deterministic_answer(question, safe_evidence, analysis, unavailable))


def _deterministic_answer(
    question: str, evidence: Evidence, analysis: Analysis | None, unavailable: str
) -> str:
    lines = [
        f"_{unavailable[:1].upper()}{unavailable[1:]}, so this answer is assembled from "
        "the stored analysis and evidence._"
    ]
    if analysis is not None:
        lines.append(
            f"*Root cause* ({analysis.confidence_score}/100 confidence): {analysis.root_cause}"
        )
        lines.append(f"*Mitigation:* {analysis.mitigation}")
        lines.append(f"*Next step:* {analysis.recommendation}")
    else:
        lines.append("No analysis has been produced for this incident yet.")

    words = {w.lower().strip(".:/-") for w in _WORD.findall(question)}
    words.discard("")
    candidates: list[tuple[str, str]] = [
        (line.ref, line.text) for line in evidence.logs if line.ref
    ] + [(m.ref, _metric_text(m)) for m in evidence.metrics if m.ref]
    matching = [
        (ref, text) for ref, text in candidates if words and any(w in text.lower() for w in words)
    ]
    if not matching and analysis is not None:
        matching = [(item.ref, item.text) for item in analysis.evidence]
    if matching:
        lines.append("*Relevant evidence:*")
        for ref, text in matching[:3]:
            shown = text if len(text) <= 300 else text[:299] + "…"
            lines.append(f"• `{ref}` {shown}")
    elif not candidates:
        lines.append("No evidence was collected for this incident.")
    return "\n".join(lines)


async def analyse(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    """The graph node: the reasoning agent over the joined, redacted evidence."""
    deps = runtime.context
    config = deps.runtime.config
    analysis = await reason(
        AlertContext.model_validate(state["alert"]),
        Evidence.model_validate(state["evidence"]),
        deps.gateway,
        max_json_retries=config.llm.max_json_retries,
        actions=config.remediation.actions,
        redactor=deps.redactor,
    )
    return {"analysis": analysis.model_dump(mode="json")}
