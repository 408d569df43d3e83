"""The follow-up loop, driven through the running app: the scripted OpenAI and Ollama servers
call tools, a log file answers them, the real checkpointer keeps the loop across a restart.

The log story is small on purpose, so the gathered evidence is exactly `L1`-`L3` and the first
tool result is `L4`: an answer can then cite what a tool found.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config
from tests.fakes.llm_servers import (
    Flavour,
    ScriptedLLMServer,
    ToolCall,
    answer,
    fixture_llm_server,  # noqa: F401 - a fixture
    slow,
    tool_call,
    tool_calls,
)
from tests.support.analyses import rca_answer
from tests.support.app import RunningApp, investigating, run_app
from tests.support.payloads import alert, group
from tests.support.waiting import eventually

STARTS = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
SECRET = "hunter2-db-password-77"
REFUSED = {"source": "app", "query": "refused"}


def write_logs(path: Path) -> None:
    t0 = STARTS - timedelta(minutes=5)
    path.write_text(
        f"{t0.isoformat()} INFO deploy checkout version=2.4.1 rolled out by ci\n"
        f"{(t0 + timedelta(minutes=1)).isoformat()} ERROR payment call failed: connection "
        f"refused (password={SECRET})\n"
        f"{(t0 + timedelta(minutes=2)).isoformat()} INFO cache warmed\n"
    )


def config_for(
    store_url: str, tmp_path: Path, server: ScriptedLLMServer, **investigation: Any
) -> Any:
    logs = tmp_path / "checkout.log"
    write_logs(logs)
    return make_config(
        store_url,
        sources={"logs": [{"type": "file", "name": "app", "path": str(logs)}]},
        llm={
            "provider": server.flavour,
            "model": server.model,
            "base_url": server.base_url,
            "timeout_s": 10,
            "transient_retries": 0,
        },
        investigation={"checkpoint_path": str(tmp_path / "checkpoints.db")} | investigation,
    )


def rca(*refs: str) -> dict[str, Any]:
    return rca_answer(
        *refs,
        root_cause="The 2.4.1 deploy broke the payments connection",
        reasoning="The connection errors start a minute after the deploy line.",
    )


async def investigate(app: RunningApp) -> int:
    response = await app.client.post(
        "/webhooks/alertmanager", json=group("g1", [alert("a", starts_at=STARTS)])
    )
    assert response.status_code == 200
    return response.json()["incident_id"]


async def analysed(app: RunningApp, incident_id: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        shown = (await app.client.get(f"/api/v1/incidents/{incident_id}")).json()
        return shown["analysis"] or None

    return await eventually(probe, within=30)


async def timeline(app: RunningApp, incident_id: int) -> list[dict[str, Any]]:
    return (await app.client.get(f"/api/v1/incidents/{incident_id}/timeline")).json()


def tool_messages(server: ScriptedLLMServer, index: int) -> list[str]:
    """The tool results request `index` carried, as the model reads them."""
    return [m["content"] for m in server.messages(index) if m["role"] == "tool"]


def tool_calls_metric(app: RunningApp, outcome: str) -> float:
    registry = app.runtime.investigations.deps.tool_metrics.registry  # type: ignore[attr-defined]
    value = registry.get_sample_value(
        "firebreak_tool_calls_total", {"tool": "search_logs", "outcome": outcome}
    )
    return value or 0.0


async def test_a_tool_result_joins_the_evidence_and_the_answer_cites_it(
    llm_server: ScriptedLLMServer, store_url: str, tmp_path: Path
) -> None:
    llm_server.script(tool_call("search_logs", REFUSED), answer(rca("L4", "L1")))
    async with run_app(config_for(store_url, tmp_path, llm_server), parts=investigating()) as app:
        incident_id = await investigate(app)
        analysis = await analysed(app, incident_id)
        events = await timeline(app, incident_id)
        ok_calls = tool_calls_metric(app, "ok")

    assert analysis["execution_status"] == "COMPLETED"
    assert analysis["tool_calls"] == 1
    cited = {item["ref"]: item for item in analysis["evidence"]}
    assert sorted(cited) == ["L1", "L4"], "grounding accepts the tool result's ref"
    assert "connection refused" in cited["L4"]["text"] and cited["L4"]["kind"] == "log"
    assert SECRET not in str(analysis)

    types = [e["type"] for e in events]
    assert types[2:] == [
        "AI_ANALYSIS_STARTED",
        "EVIDENCE_COLLECTED",
        "TOOL_CALLED",
        "ROOT_CAUSE_GENERATED",
    ]
    called = events[types.index("TOOL_CALLED")]["data"]
    assert set(called) == {"tool", "arguments", "results", "seconds", "error"}
    assert (called["tool"], called["arguments"]["query"]) == ("search_logs", "refused")
    assert (called["results"], called["error"]) == (1, None)
    assert ok_calls == 1

    assert llm_server.chat_calls == 2
    assert llm_server.tool_names(0) == ["search_logs"]  # the only kind of source configured
    # No schema beside the tools: a server that enforces one (llama.cpp, vLLM, Ollama's
    # grammar) would make a call impossible.
    assert llm_server.response_format(0) is None and llm_server.format(0) is None
    (result,) = tool_messages(llm_server, 1)
    assert "[L4]" in result and "connection refused" in result
    assert "<<<TOOL RESULT EV-" in result and "<<<END TOOL RESULT EV-" in result
    assert SECRET not in llm_server.all_bodies()


async def test_calls_that_cannot_run_answer_errors_and_the_investigation_goes_on(
    llm_server: ScriptedLLMServer, store_url: str, tmp_path: Path
) -> None:
    llm_server.script(
        tool_call("search_logs", {"source": "nowhere", "query": "x"}),
        tool_call("search_logs", {"source": "app"}),
        tool_call("search_logs", REFUSED),
        tool_call("search_logs", REFUSED),
        answer(rca("L4")),
    )
    async with run_app(config_for(store_url, tmp_path, llm_server), parts=investigating()) as app:
        incident_id = await investigate(app)
        analysis = await analysed(app, incident_id)
        events = await timeline(app, incident_id)
        outcomes = {o: tool_calls_metric(app, o) for o in ("ok", "error", "refused")}

    assert analysis["execution_status"] == "COMPLETED"
    assert analysis["tool_calls"] == 4
    assert [item["ref"] for item in analysis["evidence"]] == ["L4"]
    errors = [e["data"]["error"] for e in events if e["type"] == "TOOL_CALLED"]
    assert len(errors) == 4
    assert errors[0].startswith("unknown source 'nowhere'")
    assert errors[1].startswith("bad arguments: query")
    assert errors[2] is None
    assert errors[3].startswith("repeated call")
    assert outcomes == {"ok": 1, "error": 1, "refused": 2}
    answers = [tool_messages(llm_server, i)[-1] for i in range(1, 5)]
    assert [a.splitlines()[1].startswith("error:") for a in answers] == [True, True, False, True]


async def test_at_the_cap_the_tools_are_withdrawn_and_the_json_rca_comes(
    llm_server: ScriptedLLMServer, store_url: str, tmp_path: Path
) -> None:
    eager = [ToolCall("search_logs", {"source": "app", "query": q}) for q in ("cache", "b", "c")]
    llm_server.script(
        tool_call("search_logs", REFUSED), tool_calls(*eager), answer(rca("L4", "L5"))
    )  # two calls allowed: the model asks for four
    config = config_for(store_url, tmp_path, llm_server, max_tool_calls=2)
    async with run_app(config, parts=investigating()) as app:
        incident_id = await investigate(app)
        analysis = await analysed(app, incident_id)
        events = await timeline(app, incident_id)

    called = [e["data"]["arguments"]["query"] for e in events if e["type"] == "TOOL_CALLED"]
    assert called == ["refused", "cache"], "cut at max_tool_calls, in the model's order"
    assert analysis["execution_status"] == "COMPLETED"
    assert analysis["tool_calls"] == 2
    assert analysis["grounding"]["cited"] == ["L4", "L5"], "refs continue"
    cited = {item["ref"]: item["text"] for item in analysis["evidence"]}
    assert "refused" in cited["L4"]
    assert "L5" not in cited, "the cache line does not speak of the cause: left out"
    assert llm_server.chat_calls == 3
    # The RCA is asked in the loop's own conversation (a server reuses what it computed): the
    # tools are listed as before but cannot be called, and the answer is constrained.
    assert llm_server.tool_names(2) == ["search_logs"]
    if llm_server.flavour == "openai":
        assert llm_server.body(2)["tool_choice"] == "none"
        assert llm_server.response_format(2)["type"] == "json_schema"
    else:
        assert llm_server.format(2)["type"] == "object"
    last, before = llm_server.messages(2), llm_server.messages(1)
    assert last[: len(before)] == before, "the same conversation, grown at its end"
    results = [m["content"] for m in last if m["role"] == "tool"]
    assert "[L4]" in results[0] and "[L5]" in results[1], "the tool results are in it"
    assert "Answer now with the JSON object only" in last[-1]["content"]


@pytest.mark.parametrize("flavour", ["openai", "ollama"])
async def test_a_model_that_cannot_call_tools_skips_the_loop_with_a_note(
    flavour: Flavour, store_url: str, tmp_path: Path
) -> None:
    with ScriptedLLMServer(flavour, tools=False) as llm:
        llm.script(answer(rca("L2")))
        async with run_app(config_for(store_url, tmp_path, llm), parts=investigating()) as app:
            incident_id = await investigate(app)
            analysis = await analysed(app, incident_id)
            events = await timeline(app, incident_id)
        shown = [r for r in llm.requests if r.path == "/api/show"]

    assert analysis["execution_status"] == "COMPLETED"
    assert analysis["tool_calls"] == 0
    notes = [e for e in events if e["type"] == "NOTE"]
    assert len(notes) == 1 and notes[0]["message"].startswith("Follow-up queries skipped")
    assert "TOOL_CALLED" not in [e["type"] for e in events]
    if flavour == "openai":  # it took a 400 to learn it
        assert llm.chat_calls == 2 and llm.tools(0) and not llm.tools(1)
        assert "refused a request with tools" in notes[0]["message"]
    else:  # Ollama's capabilities said so: no request with tools was sent
        assert shown and llm.chat_calls == 1 and not llm.tools(0)
        assert "does not support tools" in notes[0]["message"]


async def test_max_tool_calls_zero_turns_the_loop_off(store_url: str, tmp_path: Path) -> None:
    with ScriptedLLMServer("openai") as llm:
        llm.script(answer(rca("L2")))
        config = config_for(store_url, tmp_path, llm, max_tool_calls=0)
        async with run_app(config, parts=investigating()) as app:
            incident_id = await investigate(app)
            analysis = await analysed(app, incident_id)
            events = await timeline(app, incident_id)

    assert analysis["execution_status"] == "COMPLETED"
    assert llm.chat_calls == 1 and not llm.tools(0)
    assert "NOTE" not in [e["type"] for e in events]


async def test_a_run_cut_short_mid_loop_resumes_after_restart(
    store_url: str, tmp_path: Path
) -> None:
    with ScriptedLLMServer("openai") as llm:
        llm.script(tool_call("search_logs", REFUSED), slow(30, rca("L4")))
        config = config_for(store_url, tmp_path, llm, max_tool_calls=3)
        config = config.model_copy(update={"llm": config.llm.model_copy(update={"timeout_s": 60})})
        async with run_app(config, parts=investigating()) as app:
            incident_id = await investigate(app)
            # the tool was called, and the model is thinking over its result: stop here
            await eventually(lambda: asyncio.sleep(0, llm.chat_calls >= 2), within=20)
        llm.script(answer(rca("L4")))
        async with run_app(config, parts=investigating()) as app:
            analysis = await analysed(app, incident_id)
            events = await timeline(app, incident_id)

    assert analysis["execution_status"] == "COMPLETED"
    assert [item["ref"] for item in analysis["evidence"]] == ["L4"]
    assert analysis["tool_calls"] == 1
    types = [e["type"] for e in events]
    assert types.count("TOOL_CALLED") == 1, "the call came from the checkpoint, not again"
    assert types.count("EVIDENCE_COLLECTED") == 1
    assert llm.chat_calls == 3
    (result,) = tool_messages(llm, 2)  # the restarted process asked with the same conversation
    assert "[L4]" in result
    assert llm.tools(2) is not None
