"""Questions in the incident thread: answered from the stored evidence and analysis, by the
LLM when one answers, else assembled from what was stored. Plain text: the Slack surface
words it for the thread."""

from __future__ import annotations

import asyncio
import re

import structlog

from firebreak.agents.grounding import metric_text
from firebreak.agents.prompts import evidence_boundary, render
from firebreak.store.schemas import Analysis
from firebreak.tools.llm import LLMGateway
from firebreak.tools.models import Evidence
from firebreak.tools.redact import Redactor
from firebreak.tools.text import cut, truncate

log = structlog.get_logger(__name__)


_WORD = re.compile(r"[A-Za-z0-9_.:/-]{4,}")
MAX_QUESTION_CHARS = 2000  # a question is cut (marked) before anything reads it
_MAX_WORDS = 40  # the question's words looked for in the evidence


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
    question = redactor.redact(cut(question, MAX_QUESTION_CHARS))
    incident_summary = redactor.redact(incident_summary)
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
            kubernetes=safe_evidence.kubernetes,
            boundary=boundary,
        )
        messages = [  # the items are scrubbed above, the rendered text is not scrubbed again
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ]
        try:
            text = (await gateway.complete_text(messages)).text.strip()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            unavailable = f"the LLM is unavailable ({getattr(exc, 'kind', type(exc).__name__)})"
            log.warning("question_llm_unavailable", error=str(exc)[:300])
        else:
            if text:
                return redactor.redact(text)
            unavailable = "the LLM returned an empty answer"
    return _deterministic_answer(question, safe_evidence, analysis, unavailable)  # scrubbed parts


def _deterministic_answer(
    question: str, evidence: Evidence, analysis: Analysis | None, unavailable: str
) -> str:
    lines = [
        f"{unavailable[:1].upper()}{unavailable[1:]}, so this answer is assembled from "
        "the stored analysis and evidence."
    ]
    if analysis is not None:
        lines.append(
            f"Root cause ({analysis.confidence_score}/100 confidence): {analysis.root_cause}"
        )
        lines.append(f"Mitigation: {analysis.mitigation}")
        lines.append(f"Next step: {analysis.recommendation}")
    else:
        lines.append("No analysis has been produced for this incident yet.")

    words = {w.lower().strip(".:/-") for w in _WORD.findall(question)[: _MAX_WORDS * 2]}
    words.discard("")
    words = set(sorted(words, key=len, reverse=True)[:_MAX_WORDS])
    candidates: list[tuple[str, str]] = [
        (line.ref, line.text) for line in evidence.logs if line.ref
    ] + [(m.ref, metric_text(m)) for m in evidence.metrics if m.ref]
    candidates += [(f.ref, f"{f.object} {f.text}") for f in evidence.kubernetes if f.ref]
    matching = [
        (ref, text) for ref, text in candidates if words and any(w in text.lower() for w in words)
    ]
    if not matching and analysis is not None:
        matching = [(item.ref, item.text) for item in analysis.evidence]
    if matching:
        lines.append("Relevant evidence:")
        for ref, text in matching[:3]:
            lines.append(f"• `{ref}` {truncate(text, 300)}")
    elif not candidates:
        lines.append("No evidence was collected for this incident.")
    return "\n".join(lines)
