"""The tool specs are made from the argument models and trimmed to what a model needs: they
go with every prompt and count in its tokens."""

from __future__ import annotations

import json
from typing import Any

from firebreak.agents.tool_args import ARGUMENTS
from firebreak.agents.tool_specs import tool_specs

LEFT_TO_VALIDATION = {"title", "default", "pattern", "minLength", "maxLength", "format", "anyOf"}


def keywords(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(keywords(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {k for k in node if k != "properties"}
    for key, value in node.items():
        if key == "properties":
            found |= set().union(*(keywords(v) for v in value.values()))
        else:
            found |= keywords(value)
    return found


def test_specs_carry_no_keyword_that_validation_checks_on_its_own() -> None:
    specs = tool_specs(["loki"], ["prom"], ["prod"])
    assert not keywords(specs) & LEFT_TO_VALIDATION
    assert len(json.dumps(specs)) < 3000  # all five tools, as sent with a prompt


def test_each_spec_is_its_models_docstring_and_fields() -> None:
    for spec in tool_specs(["loki"], ["prom"], ["prod"]):
        function = spec["function"]
        model = ARGUMENTS[function["name"]]
        assert function["description"] == " ".join((model.__doc__ or "").split())
        assert set(function["parameters"]["properties"]) == set(model.model_fields)
        assert function["parameters"]["additionalProperties"] is False
    search = tool_specs(["loki"])[0]["function"]["parameters"]
    assert search["required"] == ["source", "query"]
    assert search["properties"]["limit"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert search["properties"]["start"] == {"type": "string", "description": "RFC 3339"}
    describe = tool_specs(kubernetes=["prod"])[1]["function"]["parameters"]
    assert describe["required"] == ["source", "kind", "namespace", "name"]
