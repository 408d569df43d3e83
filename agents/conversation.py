"""The follow-up loop's conversation: LangChain messages in the graph's state, the gateway's
chat dicts on the wire.

The state keeps the model's turns as `AIMessage`s with their tool calls and each result as a
`ToolMessage` (the `messages` field, with LangGraph's `add_messages` reducer). The gateway
(tools/llm.py) speaks one plain format to OpenAI-compatible servers and Ollama alike, so the
conversation is turned into its dicts where it is sent (`chat_turns`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call, tool_call

from firebreak.tools.llm import ToolRequest

__all__ = ["asked", "chat_turns", "requested"]


def asked(text: str, calls: Sequence[ToolRequest]) -> AIMessage:
    """The model's turn as a message: its calls with their arguments as a dict, those whose
    arguments are no JSON object (kept as sent, for the toolbox to refuse) after them."""
    valid, invalid = [], []
    for call in calls:
        arguments = _as_object(call.arguments)
        if arguments is None:
            raw = str(call.arguments)
            invalid.append(invalid_tool_call(name=call.name, args=raw, id=call.id, error=None))
        else:
            valid.append(tool_call(name=call.name, args=arguments, id=call.id))
    return AIMessage(content=text, tool_calls=valid, invalid_tool_calls=invalid)


def _as_object(arguments: dict[str, Any] | str) -> dict[str, Any] | None:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def requested(message: AnyMessage) -> list[ToolRequest]:
    """The calls a model's turn asked for, as the toolbox takes them."""
    if not isinstance(message, AIMessage):
        return []
    return [
        *(ToolRequest(call["id"] or "", call["name"], call["args"]) for call in message.tool_calls),
        *(
            ToolRequest(call["id"] or "", call["name"] or "", call["args"] or "")
            for call in message.invalid_tool_calls
        ),
    ]


def chat_turns(messages: Sequence[AnyMessage]) -> list[dict[str, Any]]:
    """The loop's conversation as the gateway sends it (`LLMGateway.complete_with_tools`)."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, ToolMessage):
            turns.append(
                {
                    "role": "tool",
                    "tool_call_id": message.tool_call_id,
                    "name": message.name,
                    "content": message.text,
                }
            )
        else:
            calls = [
                {"id": call.id, "name": call.name, "arguments": call.arguments}
                for call in requested(message)
            ]
            turns.append({"role": "assistant", "content": message.text, "tool_calls": calls})
    return turns
