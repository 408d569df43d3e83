"""The follow-up tools as the model is offered them: OpenAI function specs, which `bind_tools`
of both `ChatOpenAI` and `ChatOllama` accept, generated from the argument models
(agents/tool_args.py) so the two cannot disagree.

The specs are sent with every prompt and counted in its tokens, so the generated schema is
trimmed to what a model needs to form a call: types, enums, bounds and descriptions. Titles,
defaults, patterns, lengths and formats are left to validation, which names a bad value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from firebreak.agents.tool_args import ARGUMENTS, ToolArgs

__all__ = ["tool_specs"]

_LEFT_TO_VALIDATION = frozenset({"title", "default", "pattern", "minLength", "maxLength", "format"})
_KIND_OF_SOURCE = {  # which configured sources a tool reads
    "search_logs": "logs",
    "query_metrics": "metrics",
    "kubernetes_events": "kubernetes",
    "kubernetes_describe": "kubernetes",
    "kubernetes_logs": "kubernetes",
}


def tool_specs(
    logs: Sequence[str] = (), metrics: Sequence[str] = (), kubernetes: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The specs of the tools whose kind of source is configured (by source name), each
    tool's `source` an enum of those names."""
    names = {"logs": list(logs), "metrics": list(metrics), "kubernetes": list(kubernetes)}
    return [
        _spec(tool, model, names[_KIND_OF_SOURCE[tool]])
        for tool, model in ARGUMENTS.items()
        if names[_KIND_OF_SOURCE[tool]]
    ]


def _spec(name: str, model: type[ToolArgs], sources: list[str]) -> dict[str, Any]:
    schema = _trimmed(model.model_json_schema())
    description = " ".join(schema.pop("description").split())
    schema["properties"]["source"]["enum"] = sources
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": schema},
    }


def _trimmed(node: Any) -> Any:
    """The schema without what validation checks on its own; an optional argument's
    `anyOf [X, null]` as X (being optional is what `required` says)."""
    if isinstance(node, list):
        return [_trimmed(item) for item in node]
    if not isinstance(node, dict):
        return node
    branches = node.get("anyOf")
    if branches and len(branches) == 2 and {"type": "null"} in branches:
        (kept,) = [branch for branch in branches if branch != {"type": "null"}]
        node = {**{k: v for k, v in node.items() if k != "anyOf"}, **kept}
    trimmed = {k: _trimmed(v) for k, v in node.items() if k not in _LEFT_TO_VALIDATION}
    if isinstance(node.get("properties"), dict):  # argument names, not schema keywords
        trimmed["properties"] = {k: _trimmed(v) for k, v in node["properties"].items()}
    return trimmed
