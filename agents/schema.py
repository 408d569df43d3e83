"""The answer the reasoning agent must get from the LLM, as a strict JSON schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from firebreak.store.schemas import RcaBody


class RootCauseAnalysis(RcaBody):
    """What the LLM returns. `evidence` cites refs (`L3`, `M1`) of gathered evidence."""

    model_config = ConfigDict(extra="forbid")

    evidence: list[str] = Field(description="refs of the log lines / metrics this rests on")


def strict_json_schema() -> dict[str, Any]:
    """JSON schema in the form OpenAI's strict mode wants: every property required and
    `additionalProperties: false` everywhere (Ollama's `format` accepts the same)."""
    return strict_schema(RootCauseAnalysis)


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema in OpenAI's strict form (see `strict_json_schema`)."""
    schema = model.model_json_schema()
    _strictify(schema)
    return schema


def _strictify(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
            node["required"] = list(node["properties"])
        for key in ("minLength", "maxLength", "minimum", "maximum", "default"):
            node.pop(key, None)  # strict mode rejects these keywords; pydantic re-checks them
        for value in node.values():
            _strictify(value)
    elif isinstance(node, list):
        for value in node:
            _strictify(value)
