"""The answer the reasoning agent must get from the LLM, and the constraint it is asked with."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import ConfigDict, Field

from firebreak.store.schemas import RcaBody
from firebreak.tools.llm_json import strict_schema


class RootCauseAnalysis(RcaBody):
    """What the LLM returns. `evidence` cites refs (`L3`, `M1`) of gathered evidence."""

    model_config = ConfigDict(extra="forbid")

    evidence: list[str] = Field(description="refs of the log lines / metrics this rests on")


ANSWER_ORDER = (
    "evidence",
    "root_cause",
    "reasoning",
    "confidence_score",
    "mitigation",
    "prevention",
    "recommendation",
    "remediation",
)


# Bounds for servers that enforce them (a grammar): room for a good answer, none for a loop.
ANSWER_BOUNDS = {
    "root_cause": 400,
    "reasoning": 1200,
    "mitigation": 500,
    "prevention": 400,
    "recommendation": 300,
}
MAX_CITED = 10


def rca_schema(
    refs: Collection[str] = (), actions: Collection[str] = (), *, bounded: bool = False
) -> dict[str, Any]:
    """The strict schema the RCA is asked with. Its properties come in the order a model
    should write them (servers that enforce a schema generate in that order): the evidence
    first, so the cause is written after the model has picked what it rests on. With `refs`,
    `evidence` may only hold those (an enum): a constrained model cannot invent a citation.
    Likewise `remediation` may only name an allowlisted action, and is null with none.
    `bounded`: the text fields get `maxLength` and the evidence `maxItems` (`ANSWER_BOUNDS`),
    for servers that compile the schema into a grammar: a small model looping in a field then
    stops there instead of at the token limit."""
    schema = strict_schema(RootCauseAnalysis)
    properties = schema["properties"]
    schema["properties"] = {name: properties[name] for name in ANSWER_ORDER}
    schema["required"] = list(ANSWER_ORDER)
    if refs:
        properties["evidence"]["items"] = {"type": "string", "enum": sorted(refs, key=_ref_key)}
    if bounded:
        for name, limit in ANSWER_BOUNDS.items():
            schema["properties"][name]["maxLength"] = limit
        properties["evidence"]["maxItems"] = MAX_CITED
    if not actions:
        schema["properties"]["remediation"] = {"type": "null"}
        schema.pop("$defs", None)
    else:
        proposal = schema["$defs"]["RemediationProposal"]["properties"]
        proposal["action"]["enum"] = sorted(actions)
    return schema


def _ref_key(ref: str) -> tuple[str, int]:
    return (ref[:1], int(ref[1:]) if ref[1:].isdigit() else 0)
