"""The follow-up loop's tools step: run the calls the model just made, answer each one.

A `Toolbox` (agents/toolbox.py: guards; agents/tool_results.py: redaction, caps, numbering)
is built for this step from the checkpointed state: the calls made so far (the limit and the
repeat guard span the whole loop) and every ref given out so far (new items continue the
`L`/`M`/`K` numbering). Calls run one after the other, in the model's order; past the limit the
rest are not run (the loop ends at the next `followup` step, and the model is not asked again
with tools).

Each call made is recorded three ways: a `TOOL_CALLED` timeline event (data `{tool, arguments,
results, seconds, error}`), the tool metrics (`Deps.tool_metrics`), and the state (`calls`:
the `CallRecord` with its items, which join the evidence; `messages`: a `ToolMessage` with the
result for the model, inside the prompt's data markers).

A step whose events were committed but whose checkpoint was not (the process died in between)
runs again after the restart; its calls are then made again, but not recorded twice: each
event is claimed once as `RUN_ID:TOOL_CALL_ID` (kind `tool_call`) in the store's de-duplication
table (store/dedup.py), in the event's own transaction (the timeline is the audit record); the
claim is kept as long as its incident.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from langchain_core.messages import ToolMessage
from langgraph.runtime import Runtime as GraphRuntime
from sqlalchemy import Connection

from firebreak.agents.context import Deps
from firebreak.agents.conversation import requested
from firebreak.agents.evidence import gathered
from firebreak.agents.intake import FIREBREAK
from firebreak.agents.prompts import render
from firebreak.agents.rca_prompt import rca_boundary, safe_alert
from firebreak.agents.state import CallRecord, InvestigationState
from firebreak.agents.tool_results import ToolResult, next_ref_numbers
from firebreak.agents.toolbox import Toolbox
from firebreak.store import dedup
from firebreak.store.incidents import record_event
from firebreak.store.schemas import EventType
from firebreak.tools.llm import ToolRequest
from firebreak.tools.templating import alert_window
from firebreak.tools.text import truncate

__all__ = ["earlier_result", "record_calls", "use_tools"]


async def use_tools(state: InvestigationState, runtime: GraphRuntime[Deps]) -> dict[str, Any]:
    deps = runtime.context
    settings = deps.settings
    investigation = settings.investigation
    alert = state.opened()
    calls = state.calls
    # A checkpoint written before the conversation was kept as messages has none: the model
    # is then asked again.
    requests = requested(state.messages[-1]) if state.messages else []
    room = max(0, investigation.max_tool_calls - len(calls))
    box = Toolbox(
        alert=alert,
        window=alert_window(alert, investigation.lookback_s, investigation.lookahead_s),
        http=deps.http,
        redact=deps.redactor.redact,
        logs=settings.sources.logs,
        metrics=settings.sources.metrics,
        kubernetes=settings.sources.kubernetes,
        max_calls=investigation.max_tool_calls,
        result_chars=investigation.tool_result_chars,
        next_refs=next_ref_numbers(gathered(state).refs()),
        calls_made=len(calls),
        earlier=[earlier_result(call) for call in calls],
        breakers=deps.breakers.get,
    )
    async with box:
        done = [(request, await box.call(request.name, request.arguments))
                for request in requests[:room]]  # fmt: skip
    for _, result in done:
        deps.tool_metrics.observe(result)
    incident_id = state.incident_id

    calls_made = [(f"{state.run_id}:{request.id}", result) for request, result in done]
    await deps.writer.run(partial(record_calls, incident_id=incident_id, calls=calls_made))
    boundary = rca_boundary(safe_alert(alert, deps.redactor), state.evidence)
    return {
        "calls": [_record(request, result) for request, result in done],
        "messages": [
            ToolMessage(
                render("tool_result.md", boundary=boundary, text=result.text),
                tool_call_id=request.id,
                name=request.name,
            )
            for request, result in done
        ],
    }


def record_calls(conn: Connection, *, incident_id: int, calls: list[tuple[str, ToolResult]]) -> int:
    """A `TOOL_CALLED` event per (call id, result) not recorded yet; how many were written."""
    written = 0
    for call, result in calls:
        if not dedup.claim(conn, dedup.TOOL_CALL, call, incident_id=incident_id):
            continue
        record_event(
            conn,
            incident_id,
            EventType.TOOL_CALLED,
            FIREBREAK,
            _message(result),
            result.timeline_data(),
        )
        written += 1
    return written


def _record(request: ToolRequest, result: ToolResult) -> CallRecord:
    return CallRecord(
        id=request.id,
        tool=result.tool,
        arguments=result.arguments,
        key=result.key,
        refs=result.refs,
        error=result.error,
        outcome=result.outcome,
        seconds=round(result.seconds, 4),
        items=list(result.items),
    )


def earlier_result(call: CallRecord) -> ToolResult:
    """A checkpointed call as the toolbox's repeat guard knows it."""
    return ToolResult(
        tool=call.tool,
        arguments=call.arguments,
        text="",
        refs=list(call.refs),
        error=call.error,
        seconds=call.seconds,
        outcome=call.outcome,
        key=call.key,
    )


def _message(result: ToolResult) -> str:
    arguments = ", ".join(f"{k}={v!r}" for k, v in result.arguments.items())
    called = f"{result.tool}({truncate(arguments, 300)})"
    if result.error is not None:
        return truncate(f"Tool {called}: error: {result.error}", 1000)
    if not result.refs:
        return f"Tool {called}: nothing found"
    span = result.refs[0] if len(result.refs) == 1 else f"{result.refs[0]}–{result.refs[-1]}"
    return f"Tool {called}: {len(result.refs)} results ({span})"
