"""`firebreak eval`: shipped cases and stored ones replayed through the real pipeline, scored.

The model here is the offline analyzer or a scripted OpenAI-compatible server (the real local
model's eval is a bench, bench/eval.py): what is tested is the replay and the scoring.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from firebreak.eval import CASES_DIR, EvalError, load_cases
from tests.conftest import make_config
from tests.fakes.llm_servers import ScriptedLLMServer, answer
from tests.support.app import investigating, run_app
from tests.support.payloads import alert, group
from tests.support.waiting import eventually

FIREBREAK = Path(sys.executable).parent / "firebreak"
SAMPLE = "checkout-pool-after-deploy"


def run_eval(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBREAK", "OPENAI"))}
    return subprocess.run(
        [str(FIREBREAK), "eval", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env | {"COLUMNS": "160"},
    )


def write_config(path: Path, **sections: Any) -> Path:
    body = {"slack": {"mode": "console"}, "llm": {"provider": "offline"}, **sections}
    path.write_text(yaml.safe_dump(body))
    return path


def only_the_sample(tmp_path: Path) -> Path:
    cases = tmp_path / "cases"
    shutil.copytree(CASES_DIR / SAMPLE, cases / SAMPLE)
    case = cases / SAMPLE / "case.yaml"
    case.write_text(case.read_text().replace("data: ../../demo", f"data: {CASES_DIR.parent}/demo"))
    return cases


def test_every_shipped_case_loads() -> None:
    cases = load_cases(CASES_DIR)
    assert SAMPLE in [case.name for case in cases]
    assert all(case.expect is not None and case.expect.facts for case in cases)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("description: x\n", "`expect.facts` is required"),
        ("description: x\nexpect: {facts: []}\n", "facts"),
        ("description: x\nexpect: {facts: [[a]]}\nsurprise: 1\n", "surprise"),
        ("expect: {facts: [[a]]}\n", "description"),
        ("description: x\nexpect: {facts: [[a]]}\n", "no alert.json"),
    ],
)
def test_a_bad_case_is_named_with_its_problem(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "case.yaml").write_text(text)
    with pytest.raises(EvalError) as caught:
        load_cases(tmp_path)
    assert "broken/case.yaml" in str(caught.value) and problem in str(caught.value)


def test_the_offline_analyzer_on_the_sample(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    result = run_eval(
        write_config(tmp_path / "config.yaml"),
        "--cases",
        str(only_the_sample(tmp_path)),
        "--json",
        str(report_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert SAMPLE in result.stdout and "accuracy 100%" in result.stdout
    report = json.loads(report_path.read_text())
    (case,) = report["cases"]
    assert (case["status"], case["provider"], case["correct"], case["facts"]) == (
        "COMPLETED",
        "offline",
        True,
        "2/2",
    )
    assert report["totals"]["cases"] == 1 and report["totals"]["accuracy"] == 1.0
    assert report["totals"]["completed_unsupported"] == 0


def test_an_unsupported_answer_is_counted_as_set_aside_and_never_completed(
    tmp_path: Path,
) -> None:
    dns = {
        "evidence": ["L1"],
        "root_cause": "A DNS outage at the provider.",
        "reasoning": "L1.",
        "confidence_score": 90,
        "mitigation": "Wait.",
        "prevention": "Cache DNS.",
        "recommendation": "Check DNS.",
        "remediation": None,
    }
    with ScriptedLLMServer("openai") as llm:
        llm.default = answer(dns)
        config = write_config(
            tmp_path / "config.yaml",
            llm={"provider": "openai", "model": "m", "base_url": llm.base_url, "timeout_s": 10},
        )
        report_path = tmp_path / "report.json"
        result = run_eval(
            config, "--cases", str(only_the_sample(tmp_path)), "--json", str(report_path)
        )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    (case,) = report["cases"]
    assert case["set_aside"] and case["status"] == "RECOVERED_FALLBACK"
    assert case["correct"], "the offline analysis answered instead, and it is right"
    totals = report["totals"]
    assert (totals["set_aside"], totals["completed_unsupported"]) == (1, 0)
    assert totals["wrong_confident"] == 0


async def test_stored_incidents_judged_by_people_are_replayed(
    store_url: str, tmp_path: Path
) -> None:
    logs = tmp_path / "app.log"
    config = make_config(
        store_url,
        llm={"provider": "offline"},
        sources={"logs": [{"type": "file", "name": "app", "path": str(logs)}]},
        investigation={"checkpoint_path": str(tmp_path / "checkpoints.db")},
    )
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    logs.write_text(
        f"{(starts - timedelta(minutes=4)).isoformat()} INFO cron rotate-logs started\n"
        f"{(starts - timedelta(minutes=1)).isoformat()} ERROR write failed: No space left on "
        "device (/var/lib/db)\n"
    )
    async with run_app(config, parts=investigating()) as app:
        posted = await app.client.post(
            "/webhooks/alertmanager", json=group("g1", [alert("a", starts_at=starts)])
        )
        incident_id = posted.json()["incident_id"]

        async def analysed() -> bool:
            shown = (await app.client.get(f"/api/v1/incidents/{incident_id}")).json()
            return shown["analysis"] is not None

        await eventually(analysed, within=30)
        judged = await app.client.post(
            f"/api/v1/incidents/{incident_id}/feedback",
            json={
                "by": "U0ALICE",
                "verdict": "wrong",
                "actual_cause": "The rotate-logs cron job filled the disk of the database",
            },
        )
        assert judged.status_code == 200, judged.text
        await app.client.post(f"/api/v1/incidents/{incident_id}/resolve", json={"by": "U0ALICE"})
    logs.unlink()  # a replay reads the stored evidence, never today's logs

    config_path = write_config(tmp_path / "config.yaml", store={"url": store_url})
    report_path = tmp_path / "report.json"
    result = run_eval(config_path, "--from-store", "--json", str(report_path))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    (case,) = report["cases"]
    assert case["name"].startswith(f"#{incident_id} ")
    assert case["status"] == "COMPLETED" and "space" in case["root_cause"].lower()
    assert case["correct"], "it names the disk, as the person did"


def test_no_stored_feedback_is_said_plainly(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.yaml", store={"url": f"sqlite+aiosqlite:///{tmp_path / 'f.db'}"}
    )
    subprocess.run(
        [str(FIREBREAK), "db", "upgrade", "--config", str(config)], check=True, timeout=60
    )
    result = run_eval(config, "--from-store")
    assert result.returncode == 0, result.stderr
    assert "No stored incident has feedback yet" in result.stdout
