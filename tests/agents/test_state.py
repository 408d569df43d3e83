"""The typed investigation state through the real checkpointers (the SQLite file, PostgreSQL):
what the nodes wrote comes back as the same models once the saver is opened again (a restart),
a run paused for a decision resumes from there, and a checkpoint holding plain JSON (what
earlier versions wrote) is read into the same types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt
from pydantic import BaseModel

from firebreak.agents.conversation import asked, chat_turns
from firebreak.agents.runner import checkpoint_serde, open_checkpointer
from firebreak.agents.state import (
    ApprovalDecision,
    CallRecord,
    InvestigationState,
    LoopEnd,
)
from firebreak.store.schemas import ExecutionStatus, HistoryRef, RemediationProposal
from firebreak.tools.llm import ToolRequest
from firebreak.tools.models import (
    AlertContext,
    Evidence,
    KubeFinding,
    LogLine,
    MetricReading,
    SourceReport,
)
from tests.support.analyses import make_analysis

AT = datetime(2026, 12, 1, 9, 55, tzinfo=UTC)
ALERT = AlertContext(labels={"service": "checkout"}, starts_at=AT)
LINE = LogLine(ref="L1", source="app", text="ERROR pool exhausted", timestamp=AT, count=3)
READING = MetricReading(ref="M1", source="prom", query="up", series={"job": "api"}, current=0)
FINDING = KubeFinding(ref="K1", source="prod", kind="pod", object="pod/a", text="OOMKilled")
ANALYSIS = make_analysis(
    remediation=RemediationProposal(action="restart", parameters=[], reason="frees the pool")
)
CALL = CallRecord(
    id="call_1",
    tool="search_logs",
    arguments={"source": "app", "query": "pool"},
    refs=["L2", "K2", "M2"],
    items=[
        LINE.model_copy(update={"ref": "L2"}),
        FINDING.model_copy(update={"ref": "K2"}),
        READING.model_copy(update={"ref": "M2"}),
    ],
)
ASKED = ToolRequest("call_1", "search_logs", '{"source": "app", "query": "pool"}')
BROKEN = ToolRequest("call_2", "search_logs", "{not json")


async def gather(state: InvestigationState) -> dict[str, Any]:
    return {
        "alert": ALERT,
        "history": [HistoryRef(ref="H1", incident_id=3, title="pool", created_at=AT)],
        "logs": [LINE],
        "metrics": [READING],
        "kubernetes": [FINDING],
        "reports": [SourceReport(source="app", kind="file", items=1)],
        "evidence": Evidence(logs=[LINE], metrics=[READING], kubernetes=[FINDING]),
        "messages": [asked("", [ASKED, BROKEN])],
    }


async def answer(state: InvestigationState) -> dict[str, Any]:
    return {
        "messages": [ToolMessage("[L2] found", tool_call_id="call_1", name="search_logs")],
        "calls": [CALL],
        "followup": LoopEnd(ended="answered", raw="{}", prompt_tokens=12),
        "analysis": ANALYSIS,
    }


async def wait(state: InvestigationState) -> dict[str, Any]:
    return {"decision": ApprovalDecision.model_validate(interrupt({"run": state.run_id}))}


def graph(checkpointer: BaseCheckpointSaver) -> CompiledStateGraph:
    built = StateGraph(InvestigationState)
    built.add_node("gather", gather)
    built.add_node("answer", answer)
    built.add_node("wait", wait)
    built.add_edge(START, "gather")
    built.add_edge("gather", "answer")
    built.add_edge("answer", "wait")
    built.add_edge("wait", END)
    return built.compile(checkpointer=checkpointer)


def thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


def assert_typed(state: InvestigationState) -> None:
    assert state.alert == ALERT
    assert state.logs == [LINE] and state.metrics == [READING] and state.kubernetes == [FINDING]
    assert state.evidence.refs() == {"L1", "M1", "K1"}
    assert state.history[0].ref == "H1" and isinstance(state.reports[0], SourceReport)
    assert state.calls == [CALL]
    assert [type(item) for item in state.calls[0].items] == [LogLine, KubeFinding, MetricReading]
    assert state.followup == LoopEnd(ended="answered", raw="{}", prompt_tokens=12)
    assert state.analysis == ANALYSIS
    assert isinstance(state.analysis.execution_status, ExecutionStatus)


async def test_typed_values_survive_a_restart_and_the_paused_run_resumes(store_url: str) -> None:
    async with open_checkpointer(store_url) as saver:
        await graph(saver).ainvoke(
            {"incident_id": 7, "run_id": "r1"}, thread("r1"), durability="sync"
        )

    async with open_checkpointer(store_url) as saver:  # another process, after a restart
        resumed = graph(saver)
        snapshot = await resumed.aget_state(thread("r1"))
        assert snapshot.next == ("wait",)
        assert isinstance(snapshot.values["alert"], AlertContext), "rebuilt, not a dict"
        state = InvestigationState.model_validate(snapshot.values)
        assert_typed(state)
        asked_turn, result = chat_turns(state.messages)
        assert asked_turn["tool_calls"] == [
            {
                "id": "call_1",
                "name": "search_logs",
                "arguments": {"source": "app", "query": "pool"},
            },
            {"id": "call_2", "name": "search_logs", "arguments": "{not json"},
        ]
        assert result == {
            "role": "tool",
            "tool_call_id": "call_1",
            "name": "search_logs",
            "content": "[L2] found",
        }

        decision = {"approve": True, "actor": "U1", "delay_s": 60, "digest": "d"}
        await resumed.ainvoke(Command(resume=decision), thread("r1"), durability="sync")
        done = InvestigationState.model_validate((await resumed.aget_state(thread("r1"))).values)
    assert done.decision == ApprovalDecision(approve=True, actor="U1", delay_s=60, digest="d")
    assert_typed(done)


async def test_a_checkpoint_of_plain_json_resumes_as_typed_state(store_url: str) -> None:
    """What the nodes wrote before the state was typed: `model_dump(mode="json")` dicts."""
    async with open_checkpointer(store_url) as saver:
        old = graph(saver)
        await old.aupdate_state(
            thread("r2"),
            {
                "incident_id": 7,
                "run_id": "r2",
                "alert": ALERT.model_dump(mode="json"),
                "logs": [LINE.model_dump(mode="json")],
                "evidence": Evidence(logs=[LINE]).model_dump(mode="json"),
                "analysis": ANALYSIS.model_dump(mode="json"),
                "calls": [CALL.model_dump(mode="json")],
            },
            as_node="answer",
        )
        await old.ainvoke(None, thread("r2"), durability="sync")
        await old.ainvoke(Command(resume={"approve": False, "actor": "U2"}), thread("r2"))
        state = InvestigationState.model_validate((await old.aget_state(thread("r2"))).values)
    assert state.alert == ALERT and state.logs == [LINE] and state.analysis == ANALYSIS
    assert state.calls == [CALL]
    assert state.decision == ApprovalDecision(approve=False, actor="U2")


class Foreign(BaseModel):
    """A type the state does not hold."""

    name: str


def test_the_serializer_rebuilds_the_state_types_only() -> None:
    serde = checkpoint_serde()
    assert serde.loads_typed(serde.dumps_typed(ANALYSIS)) == ANALYSIS
    assert serde.loads_typed(serde.dumps_typed(Foreign(name="x"))) == {"name": "x"}
