"""Postmortem drafts: the facts against the stored timeline (SQLite and PostgreSQL), the LLM's
narrative through the scripted LLM servers (a valid answer, a malformed one healed, an invented
timeline reference dropped, an LLM that is down), and the template when there is no LLM."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Connection, update
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.agents.postmortem import PostmortemService
from firebreak.incidents import transitions
from firebreak.incidents.ingest import ingest
from firebreak.store import incidents
from firebreak.store.db import create_engine
from firebreak.store.incidents import record_event
from firebreak.store.models import Incident, RemediationRun
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.store.schemas import EventType, EvidenceItem
from firebreak.store.writer import Writer
from firebreak.tools.llm import LLMGateway
from firebreak.tools.redact import Redactor
from tests.fakes.llm_servers import (
    ScriptedLLMServer,
    answer,
    fixture_llm_server,  # noqa: F401  (registers the `llm_server` fixture)
    fixture_openai_server,  # noqa: F401
    http_error,
    invalid_json,
)
from tests.support.analyses import make_analysis
from tests.support.gateways import gateway_for as shared_gateway
from tests.support.payloads import alert, group

OPENED = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
STARTED = OPENED - timedelta(minutes=7)
NOTE = "Rolled back checkout to 2.3.0 with password=hunter2-Sup3rSecret"


@dataclass
class Story:
    engine: AsyncEngine
    writer: Writer
    incident_id: int


def _tell(conn: Connection, incident_id: int) -> None:
    """Acknowledge, a note, the analysis, an approved rollback, resolve; fixed times."""
    transitions.acknowledge(conn, incident_id, "U0ALICE")
    record_event(conn, incident_id, EventType.NOTE, "U0BOB", NOTE)
    analysis = make_analysis(
        root_cause="The 2.3.1 deploy exhausted the database connection pool.",
        prevention="Load-test pool settings before each release.",
        recommendation="Alert on pool saturation, not only on errors.",
        evidence=[
            EvidenceItem(ref="L2", kind="log", source="loki", text="ERROR pool exhausted (x42)")
        ],
        provider="openai",
    )
    incidents.save_analysis(conn, incident_id, analysis, {})
    record_event(conn, incident_id, EventType.ROOT_CAUSE_GENERATED, "firebreak", "Root cause")
    conn.execute(
        RemediationRun.__table__.insert().values(
            incident_id=incident_id,
            action="rollback",
            definition={},
            parameters={},
            reason="undo the deploy",
            approved_by="U0ALICE",
            created_at=OPENED,
            updated_at=OPENED,
            phase="done",
            step=3,
            ok=True,
            output="",
            verified=True,
        )
    )
    transitions.resolve(conn, incident_id, "U0ALICE")
    conn.execute(
        update(Incident)
        .where(Incident.id == incident_id)
        .values(
            created_at=OPENED,
            acknowledged_at=OPENED + timedelta(minutes=4),
            resolved_at=OPENED + timedelta(minutes=74),
            escalation_level=2,
        )
    )


@pytest.fixture
async def story(writer: Writer, store_url: str) -> AsyncIterator[Story]:
    payload = AlertmanagerPayload.model_validate(group("g1", [alert("a", starts_at=STARTED)]))
    outcome = await writer.run(
        partial(ingest, payload=payload, now=incidents.utcnow(), reopen_window_s=300)
    )
    assert outcome.incident_id is not None
    await writer.run(partial(_tell, incident_id=outcome.incident_id))
    engine = create_engine(store_url)
    yield Story(engine, writer, outcome.incident_id)
    await engine.dispose()


def service(story: Story, gateway: LLMGateway | None = None) -> PostmortemService:
    return PostmortemService(
        engine=story.engine,
        writer=story.writer,
        gateway=gateway,
        redactor=Redactor(),
        max_json_retries=1,
    )


def gateway_for(server: ScriptedLLMServer) -> LLMGateway:
    return shared_gateway(server, transient_retries=0, fail_max=None)


async def timeline(story: Story) -> list[Any]:
    async with story.engine.connect() as conn:
        return await incidents.timeline(conn, story.incident_id) or []


def section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def narrative(**overrides: Any) -> dict[str, Any]:
    body = {
        "summary": [
            {"text": "A deploy exhausted the connection pool and checkout failed.", "refs": ["T1"]},
            {"text": "The rollback ended it.", "refs": ["T4"]},
        ],
        "went_well": [{"text": "The page was answered quickly.", "refs": ["T2"]}],
        "went_badly": [{"text": "The pool had no saturation alert.", "refs": []}],
    }
    return body | overrides


async def test_template_draft_states_the_facts_of_the_store(story: Story) -> None:
    draft = await service(story).draft(story.incident_id, actor="U0CAROL")
    assert draft is not None and draft.written_by == "template"
    text = draft.markdown

    assert "Drafted by Firebreak from its template (no LLM is configured)" in text
    impact = section(text, "Impact")
    for row in (
        "| Started (earliest alert) | 2026-11-22 09:53:00 UTC |",
        "| Opened | 2026-11-22 10:00:00 UTC |",
        "| Acknowledged | 2026-11-22 10:04:00 UTC by U0ALICE |",
        "| Resolved | 2026-11-22 11:14:00 UTC by U0ALICE |",
        "| Time to acknowledge | 4 min |",
        "| Time to resolve | 1 h 14 min |",
        "| Duration of impact | 1 h 21 min |",
        "| Escalation levels reached | 2 |",
    ):
        assert row in impact

    events = await timeline(story)
    told = [e for e in events if e.type != "ALERT_RECEIVED" and e.type != "POSTMORTEM_DRAFTED"]
    lines = section(text, "Timeline").strip().splitlines()
    assert [line.split("`")[1] for line in lines] == [f"T{n}" for n in range(1, len(told) + 1)]
    for line, event in zip(lines, told, strict=True):
        assert event.type in line and event.actor in line
    assert "U0BOB" in section(text, "Timeline") and "Rolled back checkout" in text

    assert "exhausted the database connection pool" in section(text, "Root cause")
    assert "`L2` loki: ERROR pool exhausted (x42)" in section(text, "Root cause")
    assert "`rollback` approved by U0ALICE: succeeded, verified" in section(text, "Remediation")
    actions = section(text, "Action items")
    assert "- [ ] Prevention: Load-test pool settings" in actions
    assert "- [ ] Recommendation: Alert on pool saturation" in actions
    assert "Acknowledged 4 min after it opened." in section(text, "What went well")
    assert "escalation level 2" in section(text, "What did not go well")

    after = await timeline(story)
    drafted = [e for e in after if e.type == "POSTMORTEM_DRAFTED"]
    assert len(drafted) == 1 and drafted[0].actor == "U0CAROL"
    assert drafted[0].data["written_by"] == "template"
    again = await service(story).draft(story.incident_id, actor="U0CAROL")
    assert again is not None and "POSTMORTEM_DRAFTED" not in again.markdown
    assert await service(story).draft(10**9, actor="U0CAROL") is None


async def test_llm_writes_the_narrative_and_the_store_the_facts(
    story: Story, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(answer(narrative()))
    async with gateway_for(llm_server) as gateway:
        draft = await service(story, gateway).draft(story.incident_id, actor="U0CAROL")
    assert draft is not None and draft.written_by == "llm"
    text = draft.markdown
    assert "written by the LLM" in text and "test-model" in text
    assert "A deploy exhausted the connection pool and checkout failed. (T1)" in text
    assert "The page was answered quickly. (T2)" in section(text, "What went well")
    assert "| Time to resolve | 1 h 14 min |" in text  # the store's, whatever the model says

    sent = json.dumps(llm_server.messages())
    assert "[T1] INCIDENT_CREATED" in sent and "by person A" in sent
    assert "U0ALICE" not in sent and "U0BOB" not in sent  # people by role, never by name
    assert "hunter2-Sup3rSecret" not in sent  # redacted before the LLM
    if llm_server.flavour == "openai":
        format_ = llm_server.response_format()["json_schema"]
        assert format_["name"] == "postmortem_narrative" and format_["strict"] is True


async def test_a_malformed_answer_is_repaired(
    story: Story, openai_server: ScriptedLLMServer
) -> None:
    openai_server.script(invalid_json("here you go: {summary: nope"), answer(narrative()))
    async with gateway_for(openai_server) as gateway:
        draft = await service(story, gateway).draft(story.incident_id, actor="U0CAROL")
    assert draft is not None and draft.written_by == "llm"
    assert openai_server.chat_calls == 2
    repair = openai_server.messages(1)[-1]["content"]
    assert "could not be used" in repair and "here you go" in repair


async def test_an_invented_timeline_reference_is_dropped(
    story: Story, openai_server: ScriptedLLMServer
) -> None:
    invented = narrative(
        went_well=[
            {"text": "The page was answered quickly.", "refs": ["T2"]},
            {"text": "The database team joined at T99.", "refs": []},
            {"text": "Failover worked.", "refs": ["T42"]},
        ]
    )
    openai_server.script(answer(invented))
    async with gateway_for(openai_server) as gateway:
        draft = await service(story, gateway).draft(story.incident_id, actor="U0CAROL")
    assert draft is not None and draft.written_by == "llm"
    well = section(draft.markdown, "What went well")
    assert "answered quickly" in well
    assert "database team" not in well and "Failover" not in well
    assert "do not exist were left out: T42, T99" in draft.markdown


async def test_llm_down_or_never_valid_leaves_the_template(
    story: Story, openai_server: ScriptedLLMServer
) -> None:
    openai_server.script(http_error(500))
    async with gateway_for(openai_server) as gateway:
        down = await service(story, gateway).draft(story.incident_id, actor="U0CAROL")
        openai_server.script(invalid_json(), invalid_json())
        invalid = await service(story, gateway).draft(story.incident_id, actor="U0CAROL")
    assert down is not None and down.written_by == "template"
    assert "from its template (the LLM could not be used" in down.markdown
    assert invalid is not None and invalid.written_by == "template"
    assert "no valid answer in 2 attempts" in invalid.markdown
    assert "| Time to acknowledge | 4 min |" in invalid.markdown
