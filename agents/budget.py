"""The RCA prompt fitted to the model: evidence ranked and packed into a token budget.

A local model reads a prompt at tens to a hundred tokens a second and has a context of a few
thousand; Ollama cuts what does not fit without a word. So the prompt is counted in the
model's own tokens (`LLMGateway.count_tokens`: the server's tokenizer where it has one, else a
measured estimate), and when it is over the budget the least telling evidence goes first:
log lines and cluster findings by their ranking score, metrics by how far they moved. What a
lead cites, and the earlier incidents, stay.

The budget is the model's context (`llm.context_tokens`, else what the server says) less the
answer (`llm.max_tokens`) and `reserve` (the tool specs and room for tool results). One count
by the server, then the items' own estimated sizes scaled to it: a few rounds at most, each
ending with a real count.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from firebreak.tools.evidence import metric_interest
from firebreak.tools.llm import LLMGateway, estimate_tokens
from firebreak.tools.models import Evidence, KubeFinding, LogLine, MetricReading

__all__ = ["Fitted", "fit_evidence", "prompt_text"]

MAX_ROUNDS = 3
MESSAGE_OVERHEAD_TOKENS = 8  # a chat template's role markers, per message

Render = Callable[[Evidence], Sequence[Mapping[str, str]]]
Item = LogLine | MetricReading | KubeFinding


@dataclass(frozen=True)
class Fitted:
    """The evidence that fits, the prompt's size in tokens and how many items were left out."""

    evidence: Evidence
    tokens: int
    budget: int
    dropped: int = 0


def prompt_text(messages: Sequence[Mapping[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


async def fit_evidence(
    evidence: Evidence,
    render: Render,
    gateway: LLMGateway,
    *,
    reserve: int = 0,
    keep: Collection[str] = (),
) -> Fitted:
    """`evidence` cut to what lets `render(evidence)` fit the budget (see the module doc);
    refs in `keep` are never dropped."""
    budget = await gateway.context_tokens() - gateway.max_tokens - reserve
    dropped = 0
    tokens = await _count(gateway, render(evidence))
    for _ in range(MAX_ROUNDS):
        if tokens <= budget:
            break
        text = prompt_text(render(evidence))
        scale = tokens / max(1, estimate_tokens(text))
        evidence, removed = _without_least(evidence, (tokens - budget) / scale, keep)
        if not removed:
            break  # nothing left that may go
        dropped += removed
        tokens = await _count(gateway, render(evidence))
    return Fitted(evidence, tokens, budget, dropped)


async def _count(gateway: LLMGateway, messages: Sequence[Mapping[str, str]]) -> int:
    return await gateway.count_tokens(prompt_text(messages)) + MESSAGE_OVERHEAD_TOKENS * len(
        messages
    )


def _without_least(
    evidence: Evidence, excess: float, keep: Collection[str]
) -> tuple[Evidence, int]:
    """The evidence without its least telling items, enough of them to save `excess`
    estimated tokens (each item's rendered line, roughly its text)."""
    ranked = sorted((item for item in _items(evidence) if item.ref not in keep), key=_value)
    gone: set[str] = set()
    saved = 0.0
    for item in ranked:
        if saved >= excess:
            break
        gone.add(item.ref)
        saved += estimate_tokens(_text(item)) + 6  # the ref, time and separators around it
    if not gone:
        return evidence, 0
    return (
        evidence.model_copy(
            update={
                "logs": [i for i in evidence.logs if i.ref not in gone],
                "metrics": [i for i in evidence.metrics if i.ref not in gone],
                "kubernetes": [i for i in evidence.kubernetes if i.ref not in gone],
            }
        ),
        len(gone),
    )


def _items(evidence: Evidence) -> list[Item]:
    return [*evidence.logs, *evidence.metrics, *evidence.kubernetes]


def _value(item: Item) -> float:
    """How telling an item is, on one scale: metrics by their shift (a change point counts
    like a strong log line), lines and findings by their ranking score."""
    if isinstance(item, MetricReading):
        return metric_interest(item) / 2
    return item.score


def _text(item: Item) -> str:
    if isinstance(item, MetricReading):
        return f"{item.query} {item.series}"
    return item.text
