"""Reading what real models write, not what the API documents.

Small and local models rarely answer in the exact shape asked for:

- JSON wrapped in a Markdown code fence, or with a sentence before or after it;
- a tool call written as text in `content` instead of the API's `tool_calls`: Qwen's and
  Hermes' `<tool_call>{"name": …, "arguments": …}</tool_call>`, the same object in a code
  fence, or bare;
- an echo: the evidence block copied back instead of an answer.

`json_object(text)` finds the one JSON object an answer holds; `text_tool_calls(text, names)`
finds calls written as text, taken only when they name an offered tool (a JSON answer that
happens to have a `name` field is not a call). Both scan with a bounded, linear pass over at
most `MAX_SCAN_CHARS` characters and at most `MAX_STARTS` candidate objects: answers are
bounded by `max_tokens`, but a server may ignore the bound, and a failed parse from each of
thousands of braces would be quadratic.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_SCAN_CHARS", "TextCall", "json_object", "json_objects", "text_tool_calls"]

MAX_SCAN_CHARS = 50_000
MAX_STARTS = 64
_DECODER = json.JSONDecoder()
_TOOL_TAG = re.compile(r"</?tool_call>")


@dataclass(frozen=True)
class TextCall:
    """A tool call the model wrote as text. `id` is made up: text has none."""

    id: str
    name: str
    arguments: dict[str, Any]


def json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every top-level JSON object in `text`, in order, wherever it sits (fences, prose,
    `<tool_call>` tags around it). A brace that starts no valid object is skipped."""
    text = text[:MAX_SCAN_CHARS]
    position = text.find("{")
    for _ in range(MAX_STARTS):
        if position == -1:
            return
        try:
            value, end = _DECODER.raw_decode(text, position)
        except (ValueError, RecursionError):
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            yield value
        position = text.find("{", end)


def json_object(text: str) -> str | None:
    """The answer's JSON object as text, ready for `model_validate_json`: the whole answer
    when it is one object, else the largest object found in it (the answer, not a nested
    example in the prose). None when it holds no object at all."""
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            if isinstance(json.loads(stripped), dict):
                return stripped
        except ValueError:
            pass
    found = list(json_objects(text))
    if not found:
        return None
    return json.dumps(max(found, key=lambda value: len(json.dumps(value))))


def text_tool_calls(text: str, offered: Collection[str]) -> list[TextCall]:
    """Calls to offered tools written as JSON in the answer's text: `{"name": TOOL,
    "arguments": {…}}` (also `"parameters"`, and arguments given as a JSON string), bare, in
    a code fence or between `<tool_call>` tags."""
    if not offered or "{" not in text:
        return []
    calls = []
    for value in json_objects(_TOOL_TAG.sub(" ", text[:MAX_SCAN_CHARS])):  # cut, then scan
        call = _as_call(value, offered)
        if call is not None:
            calls.append(call)
    return calls


def _as_call(value: dict[str, Any], offered: Collection[str]) -> TextCall | None:
    function = value.get("function")
    if isinstance(function, dict):  # {"type": "function", "function": {...}}
        value = function
    name = value.get("name")
    if not isinstance(name, str) or name not in offered:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return TextCall("call_" + uuid.uuid4().hex[:24], name, arguments)
