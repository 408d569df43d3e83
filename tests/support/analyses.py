"""Root-cause analyses for the tests that store, render or script one: each test names only
the fields its assertions read, the rest keep plain values."""

from __future__ import annotations

from typing import Any

from firebreak.store.schemas import Analysis, ExecutionStatus, RcaBody

RCA_DEFAULTS: dict[str, Any] = {
    "root_cause": "The pool is exhausted.",
    "reasoning": "L1 shows it.",
    "mitigation": "Roll back.",
    "prevention": "Alert on pool saturation.",
    "recommendation": "Roll back now.",
    "confidence_score": 70,
}


def make_analysis(**changes: Any) -> Analysis:
    """A completed analysis with `changes` over the defaults."""
    base = RCA_DEFAULTS | {"execution_status": ExecutionStatus.COMPLETED}
    return Analysis(**(base | changes))


def rca_answer(*refs: str, **changes: Any) -> dict[str, Any]:
    """A model's answer as the LLM sends it (JSON), citing `refs`."""
    body = RcaBody(**(RCA_DEFAULTS | changes)).model_dump(mode="json")
    return {**body, "evidence": list(refs)}
