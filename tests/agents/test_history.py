"""Earlier incidents as the reasoning agent's history: `H` refs in the prompt, accepted by
grounding like the others, kept in the stored analysis; end to end through the running app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from firebreak.agents.grounding import UNKNOWN_REF_PENALTY
from firebreak.agents.rca_prompt import history_lines
from firebreak.agents.reasoning import reason
from firebreak.agents.schema import RootCauseAnalysis
from firebreak.config import Config
from firebreak.store.schemas import ExecutionStatus, HistoryRef
from firebreak.tools.llm import LLMGateway
from firebreak.tools.models import AlertContext, Evidence, LogLine
from tests.conftest import make_config
from tests.fakes.llm_servers import (
    ScriptedLLMServer,
    answer,
    fixture_openai_server,  # noqa: F401  (registers the `openai_server` fixture)
)
from tests.support.app import RunningApp, investigating, run_app
from tests.support.gateways import gateway_for as shared_gateway
from tests.support.payloads import alert, group
from tests.support.waiting import eventually

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
EARLIER = HistoryRef(
    ref="H1",
    incident_id=12,
    title="HighErrorRate: checkout is failing requests",
    created_at=T0 - timedelta(days=3),
    resolved_at=T0 - timedelta(days=3) + timedelta(minutes=14),
    resolved_by="U0ALICE",
    root_cause="The 2.3.0 deploy exhausted the database connection pool.",
    resolution="rollback (verified)",
    score=1.4,
)
ALERT = AlertContext(labels={"alertname": "HighErrorRate", "service": "checkout"}, starts_at=T0)
EVIDENCE = Evidence(logs=[LogLine(ref="L1", source="loki", timestamp=T0, text="ERROR pool")])


def rca(evidence: list[str]) -> dict[str, Any]:
    body = {
        "root_cause": "The deploy exhausted the pool again, as in incident #12.",
        "reasoning": "L1 shows the pool errors; H1 had the same cause.",
        "mitigation": "Roll back.",
        "prevention": "Load-test the pool.",
        "recommendation": "Roll back now.",
        "confidence_score": 80,
        "evidence": evidence,
        "remediation": None,
    }
    RootCauseAnalysis.model_validate(body)
    return body


def gateway_for(server: ScriptedLLMServer) -> LLMGateway:
    return shared_gateway(server, transient_retries=0, fail_max=None)


async def test_history_is_evidence_the_answer_may_cite(openai_server: ScriptedLLMServer) -> None:
    openai_server.script(answer(rca(["L1", "H1", "H7"])))
    async with gateway_for(openai_server) as gateway:
        analysis = await reason(ALERT, EVIDENCE, gateway, max_json_retries=0, history=[EARLIER])

    prompt = openai_server.messages()[-1]["content"]
    evidence_block = prompt.split("<<<DATA", 1)[1].split("<<<END DATA", 1)[0]
    assert "[H1] incident #12" in evidence_block
    assert "fixed by: rollback (verified)" in evidence_block
    assert "resolved by U0ALICE after 14 min" in evidence_block
    assert "Earlier incidents like this one:" in evidence_block
    assert analysis.execution_status is ExecutionStatus.COMPLETED
    assert [(e.ref, e.kind) for e in analysis.evidence] == [("L1", "log"), ("H1", "history")]
    assert analysis.evidence[1].source == "incident #12"
    assert "H7" in analysis.reasoning  # invented
    assert analysis.confidence_score == 80 - UNKNOWN_REF_PENALTY
    assert analysis.history == [EARLIER]


CONFIRMED = EARLIER.model_copy(update={"confirmed": True})
CORRECTED = EARLIER.model_copy(
    update={"confirmed": False, "root_cause": "A cron job filled the disk of db-2."}
)


def test_history_lines_say_what_a_person_said_of_the_cause() -> None:
    plain, confirmed, corrected = history_lines([EARLIER, CONFIRMED, CORRECTED])
    assert "| root cause: The 2.3.0 deploy exhausted the database connection pool. |" in plain
    assert (
        "| root cause (confirmed): The 2.3.0 deploy exhausted the database connection pool. |"
        in confirmed
    )
    assert "| root cause (corrected by a person): A cron job filled the disk of db-2. |" in (
        corrected
    )
    assert "deploy" not in corrected  # the wrong analysis is not shown at all


async def test_a_corrected_cause_is_what_the_model_and_the_evidence_see(
    openai_server: ScriptedLLMServer,
) -> None:
    cron = {**rca(["L1", "H1"]), "root_cause": "A cron job filled the disk again, as in #12."}
    openai_server.script(answer(cron))
    async with gateway_for(openai_server) as gateway:
        analysis = await reason(ALERT, EVIDENCE, gateway, max_json_retries=0, history=[CORRECTED])

    prompt = openai_server.messages()[-1]["content"]
    evidence_block = prompt.split("<<<DATA", 1)[1].split("<<<END DATA", 1)[0]
    assert "root cause (corrected by a person): A cron job filled the disk of db-2." in (
        evidence_block
    )
    assert "2.3.0 deploy" not in prompt
    [cited] = [e for e in analysis.evidence if e.ref == "H1"]
    assert cited.text.endswith(
        "A cron job filled the disk of db-2. (corrected by a person); fixed by rollback (verified)"
    )
    assert analysis.history == [CORRECTED]


async def test_offline_analysis_keeps_the_history() -> None:
    analysis = await reason(ALERT, EVIDENCE, None, max_json_retries=0, history=[EARLIER])
    assert analysis.history == [EARLIER]
    assert (await reason(ALERT, EVIDENCE, None, max_json_retries=0)).history == []


def offline_config(store_url: str, tmp_path: Path) -> Config:
    return make_config(
        store_url,
        llm={"provider": "offline"},
        investigation={"checkpoint_path": str(tmp_path / "checkpoints.db")},
    )


async def analysed(app: RunningApp, incident_id: int) -> dict[str, Any]:
    """The incident as the API shows it, once its investigation stored an analysis."""

    async def probe() -> dict[str, Any] | None:
        shown = (await app.client.get(f"/api/v1/incidents/{incident_id}")).json()
        return shown if shown["analysis"] else None

    return await eventually(probe, within=30)


async def test_an_investigation_recalls_the_earlier_incident(
    store_url: str, tmp_path: Path
) -> None:
    config = offline_config(store_url, tmp_path)
    async with run_app(config, parts=investigating()) as app:
        first = await app.client.post("/webhooks/alertmanager", json=group("g1", [alert("a")]))
        first_id = first.json()["incident_id"]
        await analysed(app, first_id)
        resolved = await app.client.post(
            f"/api/v1/incidents/{first_id}/resolve", json={"by": "U0ALICE"}
        )
        assert resolved.status_code == 200
        second = await app.client.post("/webhooks/alertmanager", json=group("g2", [alert("b")]))
        shown = await analysed(app, second.json()["incident_id"])
        related = await app.client.get(f"/api/v1/incidents/{second.json()['incident_id']}/related")

    history = shown["analysis"]["history"]
    assert [(h["ref"], h["incident_id"], h["resolved_by"]) for h in history] == [
        ("H1", first_id, "U0ALICE")
    ]
    assert history[0]["root_cause"].startswith("[Offline analysis]")
    assert related.status_code == 200
    similar = related.json()["similar"]
    assert [item["id"] for item in similar] == [first_id]
    assert set(similar[0]) == {
        "id",
        "title",
        "status",
        "created_at",
        "resolved_at",
        "score",
        "root_cause",
        "resolved_by",
    }


async def test_the_next_investigation_is_told_what_a_person_corrected(
    store_url: str, tmp_path: Path
) -> None:
    """The whole way: the first incident's analysis is marked wrong over the API, the second
    incident's investigation gets the person's cause as its history, not the wrong analysis."""
    config = offline_config(store_url, tmp_path)
    cause = "A cron job filled the disk of db-2"
    async with run_app(config, parts=investigating()) as app:
        first = await app.client.post("/webhooks/alertmanager", json=group("g1", [alert("a")]))
        first_id = first.json()["incident_id"]
        wrong = (await analysed(app, first_id))["analysis"]["root_cause"]
        judged = await app.client.post(
            f"/api/v1/incidents/{first_id}/feedback",
            json={"by": "U0ALICE", "verdict": "wrong", "actual_cause": cause},
        )
        assert judged.status_code == 200, judged.text
        await app.client.post(f"/api/v1/incidents/{first_id}/resolve", json={"by": "U0ALICE"})
        second = await app.client.post("/webhooks/alertmanager", json=group("g2", [alert("b")]))
        shown = await analysed(app, second.json()["incident_id"])

    [earlier] = shown["analysis"]["history"]
    assert (earlier["incident_id"], earlier["confirmed"]) == (first_id, False)
    assert earlier["root_cause"] == cause != wrong


async def test_history_reaches_the_model_with_the_follow_up_loop_on(
    store_url: str, tmp_path: Path
) -> None:
    """The follow-up loop (tools offered, the default) sends the prompt the model answers in:
    the earlier incident is in it, and the answer given there may cite it."""
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    logs = tmp_path / "app.log"
    logs.write_text(f"{(starts - timedelta(minutes=1)).isoformat()} ERROR pool exhausted\n")
    with ScriptedLLMServer("openai") as llm:
        config = make_config(
            store_url,
            llm={"provider": "offline"},
            sources={"logs": [{"type": "file", "name": "app", "path": str(logs)}]},
            investigation={"checkpoint_path": str(tmp_path / "checkpoints.db")},
        )
        async with run_app(config, parts=investigating()) as app:
            first = await app.client.post(
                "/webhooks/alertmanager", json=group("g1", [alert("a", starts_at=starts)])
            )
            first_id = first.json()["incident_id"]
            await app.runtime.investigations.wait_idle()
            await app.client.post(f"/api/v1/incidents/{first_id}/resolve", json={"by": "U0ALICE"})
        llm.script(answer(rca(["L1", "H1"])))
        with_llm = config.model_copy(
            update={
                "llm": config.llm.model_copy(
                    update={"provider": "openai", "model": "m", "base_url": llm.base_url}
                )
            }
        )
        async with run_app(with_llm, parts=investigating()) as app:
            second = await app.client.post(
                "/webhooks/alertmanager", json=group("g2", [alert("b", starts_at=starts)])
            )
            await app.runtime.investigations.wait_idle()
            shown = (
                await app.client.get(f"/api/v1/incidents/{second.json()['incident_id']}")
            ).json()

    assert llm.chat_calls == 1 and llm.tool_names(0) == ["search_logs"], "the loop asked"
    prompt = llm.messages(0)[-1]["content"]
    assert f"[H1] incident #{first_id}" in prompt
    analysis = shown["analysis"]
    assert analysis["execution_status"] == "COMPLETED", analysis["reasoning"]
    assert "H1" in [item["ref"] for item in analysis["evidence"]]
