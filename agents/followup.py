"""The follow-up loop's model step: the reasoning LLM sees the evidence and may call tools
before it answers.

    join_evidence ─ followup ─┬─ (calls) ─ use_tools ─┐
                     ▲        └─ (ended) ─ analyse    │
                     └────────────────────────────────┘

Each pass sends the RCA prompt (agents/reasoning.py, with the tools explained, the leads and
the earlier incidents) plus the loop's conversation so far, offering the tools in the
provider's own format (`LLMGateway.complete_with_tools`, through the LLM's breaker and
retries). No JSON schema goes beside the tools: a server that enforces one (llama.cpp, vLLM)
would make a call impossible. A call the model writes as text is a call (tools/llm.py); an
answer without one is the RCA's first attempt, read leniently and repaired with the schema
enforced if it is not valid (tools/llm_json.py). The conversation is kept as LangChain
messages (agents/conversation.py). The loop ends (the `followup` state value, a `LoopEnd`)
when:

- it is off: `max_tool_calls: 0`, no LLM, or no source to offer a tool for (silently);
- the model cannot call tools: Ollama's `/api/show` lists no `tools` capability, or the
  server answers a request with tools with 400 (a NOTE on the timeline says so);
- `max_tool_calls` calls were made, or the conversation would no longer fit the model's
  context with room for the answer: `analyse` asks for the strict-JSON RCA in the same
  conversation, the tools still listed but not callable (`tool_choice: none`), so the server
  reuses what it computed;
- the model answers without a call: that answer is the RCA's first attempt;
- the LLM fails: that failure is the RCA's first attempt (the offline analyser answers).

Every step is checkpointed like the rest of the graph, so a run cut short resumes mid-loop:
the conversation and the calls made are in the state, never in memory.
"""

from __future__ import annotations

import asyncio
import json
import time
from functools import partial
from typing import Any

from langgraph.runtime import Runtime as GraphRuntime

from firebreak.agents.context import Deps, Settings
from firebreak.agents.conversation import asked, chat_turns
from firebreak.agents.intake import FIREBREAK
from firebreak.agents.rca_prompt import build_rca_messages, safe_alert
from firebreak.agents.state import InvestigationState, LoopEnd
from firebreak.agents.tool_specs import tool_specs
from firebreak.agents.tool_support import is_tools_refusal, supports_tools
from firebreak.store.incidents import record_event
from firebreak.store.schemas import EventType
from firebreak.tools.llm import LLMError, LLMGateway, estimate_tokens

__all__ = ["TOOLS_WERE_OFFERED", "after_followup", "followup", "offered_tools"]

# A call takes tens of tokens; a model that writes more (its answer, or a loop) is cut here
# and asked for the RCA, constrained, in the same conversation (read from the server's cache).
TOOL_TURN_MAX_TOKENS = 384
# How a loop that offered its tools ended: the RCA is then asked in the same conversation.
TOOLS_WERE_OFFERED = ("answered", "limit", "llm_error", "budget")


def offered_tools(settings: Settings) -> list[dict[str, Any]]:
    """The tool specs for the configured sources (none: nothing to follow up with)."""
    sources = settings.sources
    return tool_specs(
        [s.name for s in sources.logs],
        [s.name for s in sources.metrics],
        [s.name for s in sources.kubernetes],
    )


def after_followup(state: InvestigationState) -> str:
    """The edge out of `followup`: run the calls the model made, or go on to the RCA."""
    return "analyse" if state.followup is not None else "use_tools"


def _ended(why: str, **opening: Any) -> dict[str, LoopEnd]:
    return {"followup": LoopEnd(ended=why, **opening)}


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


async def followup(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    settings = deps.settings
    limit = settings.investigation.max_tool_calls
    gateway = deps.gateway
    tools = offered_tools(settings)
    if limit == 0 or gateway is None or not gateway.enabled or not tools:
        return _ended("off")
    if len(state.calls) >= limit:
        return _ended("limit")
    turns = chat_turns(state.messages)
    if not turns and not await _takes_tools(gateway, deps):
        await _note(deps, state, f"the model ({gateway.describe()}) does not support tools")
        return _ended("no_tools")

    alert = safe_alert(state.opened(), deps.redactor)
    prompt = build_rca_messages(
        alert, state.evidence, settings.actions, deps.redactor, tools=limit, history=state.history
    )
    if turns and await _over_budget(gateway, [*prompt, *turns], tools):
        return _ended("budget")
    started = time.perf_counter()
    try:
        turn = await gateway.complete_with_tools(
            [*prompt, *turns], tools, max_tokens=TOOL_TURN_MAX_TOKENS
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # LLMError, or a bug: the loop ends, the RCA copes as before
        if is_tools_refusal(exc):
            await _note(deps, state, f"the LLM refused a request with tools ({exc})")
            return _ended("refused")
        kind = exc.kind if isinstance(exc, LLMError) else type(exc).__name__
        return _ended("llm_error", error=f"{kind}: {exc}", elapsed_ms=_elapsed_ms(started))
    if not turn.calls:
        return _ended(
            "answered",
            raw=turn.text,
            finish_reason=turn.finish_reason,
            prompt_tokens=turn.prompt_tokens,
            completion_tokens=turn.completion_tokens,
            elapsed_ms=round(turn.elapsed_s * 1000, 1),
        )
    return {"messages": [asked(deps.redactor.redact(turn.text), turn.calls)]}


async def _over_budget(
    gateway: LLMGateway, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> bool:
    """Whether the conversation has grown past what the model can read and still answer:
    the RCA is then asked for with what the calls found so far."""
    text = json.dumps(tools) + "".join(str(m.get("content") or "") for m in messages)
    room = await gateway.context_tokens() - gateway.max_tokens
    return estimate_tokens(text) > room


async def _takes_tools(gateway: LLMGateway, deps: Deps) -> bool:
    """Ollama says whether the model takes tools; OpenAI-compatible servers say so by
    answering (a 400 to the first request is handled where it is sent)."""
    if gateway.provider != "ollama":
        return True
    return await supports_tools(gateway.provider, gateway.base_url, gateway.model, http=deps.http)


async def _note(deps: Deps, state: InvestigationState, why: str) -> None:
    await deps.writer.run(
        partial(
            record_event,
            incident_id=state.incident_id,
            kind=EventType.NOTE,
            actor=FIREBREAK,
            message=f"Follow-up queries skipped: {why}"[:1000],
            data={"followup": "skipped", "reason": why[:500]},
        )
    )
