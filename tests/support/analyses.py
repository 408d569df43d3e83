"""An analysis for the tests that store or render one: each test names only the fields its
assertions read, the rest keep plain values."""

from __future__ import annotations

from typing import Any

from firebreak.store.schemas import Analysis, ExecutionStatus

DEFAULTS: dict[str, Any] = {
    "root_cause": "The pool is exhausted.",
    "reasoning": "L1 shows it.",
    "mitigation": "Roll back.",
    "prevention": "Alert on pool saturation.",
    "recommendation": "Roll back now.",
    "confidence_score": 70,
    "execution_status": ExecutionStatus.COMPLETED,
}


def make_analysis(**changes: Any) -> Analysis:
    """A completed analysis with `changes` over the defaults."""
    return Analysis(**(DEFAULTS | changes))
