"""The one self-healing structured-output loop: a pydantic model from the LLM as JSON.

1. The first answer is `opening` when the caller has one (what the model said while tools
   were offered, unconstrained), else a constrained request (`complete_json` with the
   model's strict schema: OpenAI `response_format` json_schema, Ollama `format`).
2. The answer's JSON object is found wherever it sits (a code fence, prose around it:
   tools/llm_output.py), validated with `model_validate_json`, and `check(value)` adds the
   caller's own problems (an echo of the evidence, say).
3. A problem with the opening sends the same conversation as a constrained request (quoting
   a small model its own failed prose gets the quote back as its answer); a problem with a
   constrained answer sends the conversation plus the caller's repair message quoting the
   problems. So every retry changes something that can make it succeed: the constraint is
   added, or new problems are quoted. A request identical to one already sent is never sent:
   the model repeated an answer already refused, and would again.
4. A cut answer (`finish_reason: length`, at `llm.max_tokens`) says so first among the
   problems: the fix is a shorter answer, not a different one.

An LLM that gives nothing (unavailable, circuit open, refused) ends the loop at once: the
gateway has retried what retrying can fix already.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from firebreak.tools.llm import Completion, LLMError
from firebreak.tools.llm_output import json_object

if TYPE_CHECKING:
    from firebreak.tools.llm import LLMGateway

__all__ = [
    "Answered",
    "JsonTry",
    "Repair",
    "ask_json",
    "strict_schema",
    "validation_errors",
]

M = TypeVar("M", bound=BaseModel)
Repair = Callable[[Sequence[str], str], Mapping[str, str]]  # (problems, bad answer) -> message
_STRICT_UNSUPPORTED = ("minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems")


@dataclass(frozen=True)
class JsonTry:
    """One answer of the loop, as the caller's record of attempts shows it."""

    number: int
    ok: bool
    error: str | None
    elapsed_ms: float
    constrained: bool
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Answered(Generic[M]):
    """How the loop ended: `value` (valid), or `failure` saying why there is none.
    `gave_nothing`: the LLM itself failed (unavailable, refused), as opposed to answering
    badly."""

    value: M | None
    tries: list[JsonTry]
    failure: str | None = None
    gave_nothing: bool = False

    @property
    def prompt_tokens(self) -> int | None:
        """The prompt of the answer that counted (the last one the server measured)."""
        counted = [t.prompt_tokens for t in self.tries if t.prompt_tokens is not None]
        return counted[-1] if counted else None


def strict_schema(model: type[BaseModel], *, bounded: bool = False) -> dict[str, Any]:
    """`model`'s JSON schema in OpenAI's strict form: every property required and
    `additionalProperties: false` everywhere (Ollama's `format`, llama.cpp and vLLM take the
    same). Length and range keywords are left out (strict mode refuses them; pydantic checks
    them on the answer anyway) unless `bounded`: servers that compile the schema into a
    grammar enforce them, and a small model looping in a list or a string then stops there."""
    schema = model.model_json_schema()
    _strictify(schema, bounded)
    return schema


def _strictify(node: Any, bounded: bool) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
            node["required"] = list(node["properties"])
        for key in (*([] if bounded else _STRICT_UNSUPPORTED), "default"):
            node.pop(key, None)
        for value in node.values():
            _strictify(value, bounded)
    elif isinstance(node, list):
        for value in node:
            _strictify(value, bounded)


def validation_errors(exc: ValidationError) -> list[str]:
    """pydantic's errors as short lines a model can act on."""
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


async def ask_json(
    gateway: LLMGateway,
    messages: Sequence[Mapping[str, Any]],
    model: type[M],
    *,
    name: str,
    retries: int,
    repair: Repair,
    opening: Completion | LLMError | None = None,
    check: Callable[[M], Sequence[str]] | None = None,
    schema: dict[str, Any] | None = None,
    tools: Sequence[Mapping[str, Any]] = (),
) -> Answered[M]:
    """`model` from the LLM; see the module doc. `retries`: answers after the first;
    `schema`: the constraint sent, when the caller narrows `model`'s own (e.g. the refs that
    may be cited, as an enum); `tools`: the specs the conversation was held with (sent as
    context only: `complete_json`)."""
    constraint = schema or strict_schema(model, bounded=await gateway.enforces_lengths())
    conversation = list(messages)
    sent: set[str] = set()
    tries: list[JsonTry] = []
    failure = "no attempt was made"
    for number in range(1, retries + 2):
        constrained = number > 1 or opening is None
        if constrained:
            key = _fingerprint(conversation)
            if key in sent:
                failure = "the model repeated an answer already refused"
                break
            sent.add(key)
            answer = await _ask(gateway, conversation, constraint, name, tools)
        else:
            assert opening is not None
            answer = opening
        if isinstance(answer, Exception):
            why = f"{getattr(answer, 'kind', type(answer).__name__)}: {answer}"
            tries.append(JsonTry(number, False, why[:1000], 0.0, constrained))
            return Answered(None, tries, why, gave_nothing=True)
        value, problems = _read(answer, model, check)
        tries.append(
            JsonTry(
                number,
                value is not None,
                None if value is not None else "invalid answer: " + "; ".join(problems)[:980],
                round(answer.elapsed_s * 1000, 1),
                constrained,
                answer.prompt_tokens,
                answer.completion_tokens,
            )
        )
        if value is not None:
            return Answered(value, tries)
        failure = "invalid answer: " + "; ".join(problems)
        # After the unconstrained opening, adding the constraint is the change; after a
        # constrained answer, quoting its problems is.
        conversation = [*messages, repair(problems, answer.text)] if constrained else list(messages)
    else:
        failure = f"no valid answer after {len(tries)} attempts (last: {failure})"
    return Answered(None, tries, failure)


async def _ask(
    gateway: LLMGateway,
    conversation: Sequence[Mapping[str, Any]],
    schema: dict[str, Any],
    name: str,
    tools: Sequence[Mapping[str, Any]],
) -> Completion | Exception:
    try:
        return await gateway.complete_json(conversation, schema, schema_name=name, tools=tools)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # LLMError, or a bug: either way the LLM gave nothing
        return exc if isinstance(exc, LLMError) else LLMError(str(exc), kind=type(exc).__name__)


def _read(
    answer: Completion, model: type[M], check: Callable[[M], Sequence[str]] | None
) -> tuple[M | None, list[str]]:
    """The valid value, or the problems to quote back."""
    cut = (
        ["the answer was cut off at the token limit: write every field shorter"]
        if answer.cut
        else []
    )
    found = json_object(answer.text)
    if found is None:
        return None, [*cut, "the answer holds no JSON object"]
    try:
        value = model.model_validate_json(found)
    except ValidationError as exc:
        return None, [*cut, *validation_errors(exc)]
    problems = list(check(value)) if check is not None else []
    return (None, problems) if problems else (value, [])


def _fingerprint(conversation: Sequence[Mapping[str, Any]]) -> str:
    text = json.dumps(
        [dict(m) for m in conversation], sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()
