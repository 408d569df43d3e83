"""Firebreak's LLM paths against a real model: Qwen2.5-Coder 0.5B under llama.cpp's own server
(tests/support/local_llm.py), not a script.

A small model's answers are not asserted to be right. What is asserted is what Firebreak owes
its reader whatever the model says: the JSON validates, every ref it shows exists, the status
and the confidence follow the rules (an unsupported answer is never COMPLETED), the prompt fits
its budget and its size is on the timeline, the card says what happened, and no secret reaches
the model. The store is SQLite only: these tests are about the model, and each costs tens of
seconds of CPU.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, SecretStr

from firebreak.agents.postmortem import PostmortemService
from firebreak.agents.questions import answer_question
from firebreak.agents.reasoning import OFFLINE_PREFIX
from firebreak.bot.console import render_text
from firebreak.bot.slack_app import SlackOptions
from firebreak.bot.slack_outbox import OutboxSettings
from firebreak.components import Parts, QuietNotifier
from firebreak.config import Secrets
from firebreak.incidents.postmortem import gather
from firebreak.sample import materialise, serve_sample_prometheus
from firebreak.store import incidents
from firebreak.store.schemas import Analysis, ExecutionStatus
from firebreak.tools.llm import LLMGateway, estimate_tokens
from firebreak.tools.llm_json import ask_json
from firebreak.tools.models import Evidence, LogLine
from firebreak.tools.redact import Redactor
from tests.conftest import make_config
from tests.fakes.slack_api import DEFAULT_TOKEN, FakeSlackApi
from tests.support.app import run_app
from tests.support.local_llm import LocalLLM
from tests.support.slack_signing import SIGNING_SECRET

pytestmark = pytest.mark.real_llm

CHANNEL = "C0INCIDENTS"
SECRET = "hunter2-Sup3rSecret"
MAX_TOKENS = 768
SLACK_AND_INVESTIGATIONS = Parts(
    slack=SlackOptions(outbox=OutboxSettings(backoff_initial_s=0.05, backoff_max_s=0.3, poll_s=0.1))
)
QUIET = Parts(notifier=QuietNotifier(), investigate_opened=False)


def llm_section(local_llm: LocalLLM) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": local_llm.model,
        "base_url": local_llm.base_url,
        "timeout_s": 600,
        "max_tokens": MAX_TOKENS,
        "transient_retries": 0,
    }


def gateway_for(local_llm: LocalLLM) -> LLMGateway:
    return LLMGateway(
        provider="openai",
        model=local_llm.model,
        base_url=local_llm.base_url,
        timeout_s=600,
        max_tokens=MAX_TOKENS,
        transient_retries=0,
    )


async def test_the_sample_incident_end_to_end_is_grounded_and_honest(
    local_llm: LocalLLM, tmp_path: Path
) -> None:
    story = materialise(tmp_path / "story", datetime.now(UTC))
    with story.log_path.open("a") as log:  # a secret the model must never see
        log.write(f"{datetime.now(UTC).isoformat()} WARN db login password={SECRET}\n")
    with FakeSlackApi() as slack:
        async with serve_sample_prometheus(story.series) as prometheus_url:
            config = make_config(
                f"sqlite+aiosqlite:///{tmp_path / 'firebreak.db'}",
                slack={"mode": "http", "api_base_url": slack.base_url, "channel": CHANNEL},
                llm=llm_section(local_llm),
                sources=story.sources(prometheus_url),
                investigation={"checkpoint_path": str(tmp_path / "checkpoints.db")},
            )
            secrets = Secrets(
                slack_bot_token=SecretStr(DEFAULT_TOKEN),
                slack_signing_secret=SecretStr(SIGNING_SECRET),
            )
            async with run_app(config, secrets, SLACK_AND_INVESTIGATIONS) as app:
                response = await app.client.post("/webhooks/alertmanager", json=story.payload)
                incident_id = response.json()["incident_id"]
                await app.runtime.investigations.wait_idle()
                async with app.runtime.engine.connect() as conn:
                    incident = await incidents.get_incident(conn, incident_id)
                    gathered = Evidence.model_validate(
                        await incidents.latest_evidence(conn, incident_id) or {}
                    )
                    timeline = await incidents.timeline(conn, incident_id)
                assert app.runtime.outbox is not None
                assert await app.runtime.outbox.idle(30)
            posted = slack.calls("chat.postMessage", ok=True)
    replies = [c for c in posted if c.params.get("thread_ts")]

    assert incident is not None and incident.analysis is not None and timeline is not None
    analysis = Analysis.model_validate(incident.analysis.model_dump())
    llm_tries = [a for a in analysis.attempts if a.provider == "openai"]
    assert llm_tries, "the model was asked"
    assert any(a.error is None or a.error.startswith("invalid answer") for a in llm_tries), (
        "the model answered (validly or not): it was reached"
    )

    # Every ref shown exists in what was gathered, and no secret reached anything.
    known = gathered.refs() | {item.ref for item in analysis.history}
    assert all(item.ref in known for item in analysis.evidence)
    assert SECRET not in incident.model_dump_json()
    # Honest status: a COMPLETED answer is the model's and rests on the evidence it cites;
    # anything else is the offline analysis, which says why.
    if analysis.execution_status is ExecutionStatus.COMPLETED:
        assert analysis.provider == "openai" and not analysis.root_cause.startswith(OFFLINE_PREFIX)
        assert analysis.grounding is not None and analysis.grounding.support == "supported"
        assert analysis.evidence, "a completed answer cites gathered evidence"
        assert analysis.confidence_score <= 90
        if not analysis.grounding.agreeing:
            assert analysis.confidence_score <= 40 and analysis.dissent
    else:
        assert analysis.execution_status is ExecutionStatus.RECOVERED_FALLBACK
        assert analysis.root_cause.startswith(OFFLINE_PREFIX)
        assert "set aside" in analysis.reasoning or "could not be used" in analysis.reasoning
    # The prompt fits the budget and its size is on the timeline.
    assert analysis.prompt_tokens is not None
    assert analysis.prompt_tokens <= local_llm.n_ctx - MAX_TOKENS
    collected = next(e for e in timeline if e.type == "EVIDENCE_COLLECTED")
    assert 0 < collected.data["prompt_tokens"] <= collected.data["prompt_budget_tokens"]
    generated = [e for e in timeline if e.type == "ROOT_CAUSE_GENERATED"]
    assert generated and generated[-1].data["prompt_tokens"] == analysis.prompt_tokens
    # The card in the thread says what happened.
    (rca,) = [c for c in replies if "Root-cause analysis" in render_text(c.params["blocks"])]
    shown = render_text(rca.params["blocks"])
    assert f"{analysis.confidence_score}%" in shown
    if analysis.set_aside is not None:
        assert "the model's answer was set aside" in shown
    elif analysis.execution_status is ExecutionStatus.COMPLETED:
        assert "completed" in shown


async def test_the_gateway_reads_what_the_server_says(local_llm: LocalLLM) -> None:
    async with gateway_for(local_llm) as gateway:
        kind = await gateway.server_kind()
        context = await gateway.context_tokens()
        text = "ERROR payment gateway timeout after 5019ms: connection pool exhausted (10/10)"
        counted = await gateway.count_tokens(text * 20)

        class Short(BaseModel):
            cause: str = Field(max_length=2000)
            refs: list[str]

        schema = {
            "type": "object",
            "additionalProperties": False,
            "required": ["cause", "refs"],
            "properties": {
                "cause": {"type": "string", "maxLength": 60},
                "refs": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["L1", "L2"]},
                    "maxItems": 2,  # an unbounded array loops a small model to the token limit
                },
            },
        }
        answered = await ask_json(
            gateway,
            [{"role": "user", "content": "Explain at length why the pool ran out. JSON."}],
            Short,
            name="short",
            retries=0,
            repair=lambda errors, bad: {"role": "user", "content": "again"},
            schema=schema,
        )

    assert (kind, context) == ("llama.cpp", local_llm.n_ctx)
    estimate = estimate_tokens(text * 20)
    assert counted != estimate, "the server's tokenizer answered, not the estimate"
    assert 0.75 * estimate <= counted <= 1.25 * estimate, "and the estimate is close to it"
    assert answered.value is not None, answered.failure
    assert len(answered.value.cause) <= 60, "the server enforced the bound"
    assert set(answered.value.refs) <= {"L1", "L2"}, "and the refs the schema allows"


async def test_a_call_the_model_writes_is_taken_as_a_call(local_llm: LocalLLM) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "search_logs",
                "description": "Search a log source.",
                "parameters": {
                    "type": "object",
                    "properties": {"source": {"type": "string"}, "query": {"type": "string"}},
                    "required": ["source", "query"],
                },
            },
        }
    ]
    messages = [
        {"role": "system", "content": "You are an SRE. Use the tools offered when asked."},
        {
            "role": "user",
            "content": "Call search_logs with source app and query 'connection refused'.",
        },
    ]
    async with gateway_for(local_llm) as gateway:
        turn = await gateway.complete_with_tools(messages, tools, max_tokens=128)

    assert turn.calls, f"no call taken from: {turn.text!r}"
    (call,) = turn.calls[:1]
    arguments = call.arguments if isinstance(call.arguments, dict) else json.loads(call.arguments)
    assert call.name == "search_logs" and isinstance(arguments, dict)


async def test_a_thread_question_is_answered_by_the_model(local_llm: LocalLLM) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    evidence = Evidence(
        logs=[
            LogLine(ref="L1", source="app", timestamp=t0, text="INFO deploy checkout v2.4.1"),
            LogLine(
                ref="L2",
                source="app",
                timestamp=t0 + timedelta(minutes=2),
                text=f"ERROR pool exhausted connecting with password={SECRET}",
                count=40,
            ),
        ]
    )
    async with gateway_for(local_llm) as gateway:
        reply = await answer_question(
            "What happened right before the errors started?",
            "#1 HighErrorRate on checkout",
            evidence,
            None,
            gateway,
            redactor=Redactor(),
        )
    assert reply.strip()
    assert "assembled from the stored analysis" not in reply, "the model answered"
    assert SECRET not in reply


async def test_the_postmortem_narrative_is_grounded_or_says_why_not(
    local_llm: LocalLLM, tmp_path: Path
) -> None:
    config = make_config(f"sqlite+aiosqlite:///{tmp_path / 'firebreak.db'}")
    async with run_app(config, Secrets(), QUIET) as app:
        story = materialise(tmp_path / "story", datetime.now(UTC))
        response = await app.client.post("/webhooks/alertmanager", json=story.payload)
        incident_id = response.json()["incident_id"]
        await app.runtime.incidents.acknowledge(incident_id, "U0ALICE")
        await app.runtime.incidents.resolve(incident_id, "U0ALICE")
        async with app.runtime.engine.connect() as conn:
            facts = await gather(conn, incident_id)
        assert facts is not None
        async with gateway_for(local_llm) as gateway:
            service = PostmortemService(
                engine=app.runtime.engine,
                writer=app.runtime.writer,
                gateway=gateway,
                redactor=Redactor(),
                max_json_retries=1,
            )
            written = await service.write(facts)

    statements = [
        *written.narrative.summary,
        *written.narrative.went_well,
        *written.narrative.went_badly,
    ]
    cited = {ref for text in statements for ref in re.findall(r"\bT\d+\b", text)}
    assert cited <= facts.refs, "every statement cites timeline items that exist"
    if written.by == "llm":
        assert written.narrative.summary
        assert "written by the LLM" in written.byline
    else:
        assert "template" in written.byline and "(" in written.byline, "it says why"
