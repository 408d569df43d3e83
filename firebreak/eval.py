"""`firebreak eval`: replays incidents through the configured model and prompts and scores them.

A case is an incident whose cause is known:

- shipped cases (`examples/eval/<name>/`, or `--cases DIR`): an Alertmanager payload, log
  files and metric series anchored at the alert (the sample's format, firebreak/sample.py),
  and `case.yaml` with the expected facts and, when the story has a cluster, what the cluster
  reports. Each is investigated through the real pipeline, as `firebreak investigate --sample`
  is: the logs through a file source, the series through the sample Prometheus on loopback,
  the cluster's findings joined to them, the follow-up tools offered;
- `--from-store`: the configured store's resolved incidents that a person gave feedback on
  (the "Was this right?" control), replayed from their stored evidence with the cause the
  person confirmed (or wrote) as the truth.

Every replay runs in a throw-away store: evaluating never touches the real one.

Scores per case: the status, the key facts found in the root cause, the refs the model cited
and invented, the confidence, the prompt's tokens and the seconds. Totals: accuracy, answers set
aside as unsupported, unsupported answers reported COMPLETED (must be 0), wrong answers at 70 %
confidence or more, JSON failures (first answer invalid, and no valid answer at all) and the
median seconds.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from firebreak.agents.claims import cause_terms, symptom_terms
from firebreak.agents.runner import InvestigationService
from firebreak.components import Parts, QuietNotifier, assembled
from firebreak.config import Config, Secrets
from firebreak.sample import materialise, serve_sample_prometheus, shift_stamps
from firebreak.store import feedback, incidents
from firebreak.store.db import create_engine
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.store.schemas import Analysis, ExecutionStatus
from firebreak.tools.models import AlertContext, Evidence, KubeFinding
from firebreak.tools.sources import SourcesConfig

__all__ = [
    "CASES_DIR",
    "Case",
    "CaseResult",
    "EvalError",
    "Report",
    "load_cases",
    "run_cases",
    "score",
    "stored_cases",
]

CASES_DIR = Path(__file__).resolve().parent.parent / "examples" / "eval"
CONFIDENT = 70  # a wrong answer at this confidence or above misleads the reader
# A stored truth is a person's sentence: the root cause must share this many of its cause words
# (or concepts: "disk" and "no space left" are one) to count as naming it. A coarse judge.
TRUTH_TERMS = 2


class EvalError(Exception):
    """The cases cannot be read (the message names the file and the problem)."""


class ClusterFact(BaseModel):
    """What the case's cluster reports: a pod's state, an event, a rollout, a log's end."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    object: str
    text: str
    at_s: float = 0.0  # seconds from the alert's start (negative: before)
    count: int = Field(1, ge=1)


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Each group lists alternatives (regular expressions, case-insensitive); the root cause
    # must match one of every group.
    facts: list[list[str]] = Field(min_length=1)
    wrong: list[str] = []  # a root cause matching one of these names a wrong cause


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    expect: Expect | None = None  # shipped cases
    truth: str | None = None  # stored cases: the cause a person confirmed or wrote
    kubernetes: list[ClusterFact] = []
    data: str | None = None  # the story's files, relative to the case file (default: beside it)
    path: Path | None = None
    stored: dict[str, Any] | None = None  # stored cases: alert context and gathered evidence


class CaseResult(BaseModel):
    """One case's outcome, as the table and `--json` show it."""

    name: str
    status: str
    provider: str
    correct: bool
    facts: str  # "2/2"
    wrong_named: bool
    cited: int
    invented: int
    set_aside: bool
    completed_unsupported: bool
    confidence: int
    prompt_tokens: int | None
    seconds: float
    first_answer_invalid: bool
    no_valid_answer: bool
    root_cause: str


class Report(BaseModel):
    provider: str
    model: str
    cases: list[CaseResult]
    totals: dict[str, Any]


# --------------------------------------------------------------------------------- cases


def load_cases(directory: Path) -> list[Case]:
    """Every case under `directory`: each subdirectory holding a `case.yaml`."""
    if not directory.is_dir():
        raise EvalError(f"{directory} is not a directory of cases")
    cases = []
    for path in sorted(directory.glob("*/case.yaml")):
        try:
            raw = yaml.safe_load(path.read_text()) or {}
            case = Case.model_validate({"name": path.parent.name, **raw, "path": path})
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise EvalError(f"{path}: {_first_line(exc)}") from None
        if case.expect is None:
            raise EvalError(f"{path}: `expect.facts` is required")
        if not (_data_dir(case) / "alert.json").exists():
            raise EvalError(f"{path}: no alert.json in {_data_dir(case)}")
        cases.append(case)
    if not cases:
        raise EvalError(f"{directory} holds no case (a folder with a case.yaml)")
    return cases


async def stored_cases(config: Config, *, limit: int) -> list[Case]:
    """The configured store's resolved incidents a person judged, as cases (read only)."""
    engine = create_engine(config.store.url)
    try:
        async with engine.connect() as conn:
            resolved = await feedback.resolved_cases(conn, limit=limit)
    except SQLAlchemyError as exc:
        raise EvalError(f"the store cannot be read: {_first_line(exc)}") from None
    finally:
        await engine.dispose()
    return [
        Case(
            name=f"#{item.incident_id} {item.title}"[:80],
            description=f"{item.verdict.value} by {item.judged_by}",
            truth=item.truth,
            stored={
                "alert": item.alert.model_dump(mode="json"),
                "evidence": item.evidence,
            },
        )
        for item in resolved
        if item.evidence and item.truth
    ]


def _data_dir(case: Case) -> Path:
    assert case.path is not None
    return (case.path.parent / (case.data or ".")).resolve()


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


# --------------------------------------------------------------------------------- running


Progress = Callable[[int, int, Case], None]


async def run_cases(
    cases: Sequence[Case],
    config: Config,
    secrets: Secrets,
    *,
    progress: Progress | None = None,
) -> Report:
    """Replay every case against the configured LLM; the report."""
    results = []
    for number, case in enumerate(cases, start=1):
        if progress is not None:
            progress(number, len(cases), case)
        began = time.perf_counter()
        analysis = await _replay(case, config, secrets)
        results.append(score(case, analysis, time.perf_counter() - began))
    return Report(
        provider=config.llm.provider,
        model="" if config.llm.provider == "offline" else config.llm.model,
        cases=results,
        totals=totals(results),
    )


async def _replay(case: Case, config: Config, secrets: Secrets) -> Analysis:
    with tempfile.TemporaryDirectory(prefix="firebreak-eval-") as tmp:
        async with AsyncExitStack() as stack:
            if case.stored is not None:
                payload, seed, sources = _stored_story(case)
            else:
                payload, seed, sources = await _shipped_story(case, Path(tmp), stack)
            isolated = _isolated(config, Path(tmp), sources)
            parts = Parts(notifier=QuietNotifier(), investigate_opened=False)
            runtime = await stack.enter_async_context(assembled(isolated, secrets, parts))
            outcome = await runtime.ingest(payload)
            if outcome.incident_id is None:
                raise EvalError(f"case {case.name}: its alert is not firing")
            service = runtime.investigations
            assert isinstance(service, InvestigationService)
            await service.replay(outcome.incident_id, seed, actor="eval", reason="eval")
            async with runtime.engine.connect() as conn:
                incident = await incidents.get_incident(conn, outcome.incident_id)
    if incident is None or incident.analysis is None:
        raise EvalError(f"case {case.name}: the investigation produced no analysis")
    return incident.analysis


async def _shipped_story(
    case: Case, workdir: Path, stack: AsyncExitStack
) -> tuple[AlertmanagerPayload, Evidence, SourcesConfig]:
    story = materialise(workdir / "story", datetime.now(UTC), source=_data_dir(case))
    logs = [{"type": "file", "name": path.stem, "path": str(path)} for path in story.log_paths]
    metrics = []
    if story.series:
        url = await stack.enter_async_context(serve_sample_prometheus(story.series))
        metrics = [
            {"type": "prometheus", "name": "prometheus", "url": url, "queries": story.queries}
        ]
    findings = [
        KubeFinding(
            source="cluster",
            kind=fact.kind,
            object=fact.object,
            text=shift_stamps(fact.text, story.shift),  # the times it quotes move with the story
            timestamp=story.alert_start + timedelta(seconds=fact.at_s),
            count=fact.count,
            score=4.0 if fact.kind in ("pod", "previous_log", "log", "job") else 3.0,
        )
        for fact in case.kubernetes
    ]
    sources = SourcesConfig.model_validate({"logs": logs, "metrics": metrics})
    payload = AlertmanagerPayload.model_validate(story.payload)
    return payload, Evidence(kubernetes=findings), sources


def _stored_story(case: Case) -> tuple[AlertmanagerPayload, Evidence, SourcesConfig]:
    """A stored incident as a fresh firing alert with its stored evidence: nothing is fetched
    live (today's logs would not be that day's)."""
    assert case.stored is not None
    alert = AlertContext.model_validate(case.stored["alert"])
    payload = AlertmanagerPayload.model_validate(
        {
            "version": "4",
            "groupKey": f"eval:{case.name}",
            "status": "firing",
            "receiver": "firebreak-eval",
            "groupLabels": {},
            "commonLabels": alert.labels,
            "commonAnnotations": alert.annotations,
            "externalURL": "http://eval",
            "alerts": [
                {
                    "status": "firing",
                    "labels": alert.labels,
                    "annotations": alert.annotations,
                    "startsAt": alert.starts_at.isoformat(),
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": alert.generator_url,
                    "fingerprint": f"eval{abs(hash(case.name)) % 10**12:012d}",
                }
            ],
        }
    )
    return payload, Evidence.model_validate(case.stored["evidence"]), SourcesConfig()


def _isolated(config: Config, workdir: Path, sources: SourcesConfig) -> Config:
    """The configuration with the case's sources, a throw-away store, nobody paged."""
    return config.model_copy(
        update={
            "store": config.store.model_copy(
                update={"url": f"sqlite+aiosqlite:///{workdir / 'eval.db'}"}
            ),
            "investigation": config.investigation.model_copy(
                update={"checkpoint_path": str(workdir / "checkpoints.db")}
            ),
            "sources": sources,
            "escalation": config.escalation.model_copy(update={"policies": []}),
        }
    )


# --------------------------------------------------------------------------------- scoring


def score(case: Case, analysis: Analysis, seconds: float) -> CaseResult:
    """How one analysis did against the case's truth."""
    cause = analysis.root_cause
    if case.expect is not None:
        found = sum(_matches(cause, group) for group in case.expect.facts)
        total = len(case.expect.facts)
        wrong = any(re.search(p, cause, re.IGNORECASE) for p in case.expect.wrong)
        correct = found == total and not wrong
    else:
        found, total, wrong = _truth_named(case, cause)
        correct = found >= min(TRUTH_TERMS, total) > 0
    grounding = analysis.grounding
    llm_tries = [a for a in analysis.attempts if a.provider != "offline"]
    support = grounding.support if grounding is not None else "supported"
    return CaseResult(
        name=case.name,
        status=analysis.execution_status.value,
        provider=analysis.provider,
        correct=correct,
        facts=f"{found}/{total}",
        wrong_named=wrong,
        cited=len(grounding.cited) if grounding else len(analysis.evidence),
        invented=len(grounding.invented) if grounding else 0,
        set_aside=analysis.set_aside is not None,
        completed_unsupported=(
            analysis.execution_status is ExecutionStatus.COMPLETED and support != "supported"
        ),
        confidence=analysis.confidence_score,
        prompt_tokens=analysis.prompt_tokens,
        seconds=round(seconds, 1),
        first_answer_invalid=bool(llm_tries) and _invalid(llm_tries[0].error),
        no_valid_answer=bool(llm_tries) and not any(a.ok for a in llm_tries),
        root_cause=cause,
    )


def _matches(text: str, alternatives: Sequence[str]) -> bool:
    return any(re.search(pattern, text, re.IGNORECASE) for pattern in alternatives)


def _truth_named(case: Case, cause: str) -> tuple[int, int, bool]:
    """(cause words of the truth the root cause names, cause words of the truth, False)."""
    assert case.stored is not None and case.truth is not None
    symptoms = symptom_terms(AlertContext.model_validate(case.stored["alert"]))
    truth = cause_terms(case.truth, symptoms)
    return len(truth & cause_terms(cause, symptoms)), len(truth), False


def _invalid(error: str | None) -> bool:
    return bool(error) and str(error).startswith("invalid answer")


def totals(results: Sequence[CaseResult]) -> dict[str, Any]:
    count = len(results)
    return {
        "cases": count,
        "accuracy": round(sum(r.correct for r in results) / count, 3) if count else 0.0,
        "correct": sum(r.correct for r in results),
        "completed": sum(r.status == "COMPLETED" for r in results),
        "set_aside": sum(r.set_aside for r in results),
        "completed_unsupported": sum(r.completed_unsupported for r in results),
        "wrong_confident": sum((not r.correct) and r.confidence >= CONFIDENT for r in results),
        "invented_refs": sum(r.invented for r in results),
        "json_first_invalid": sum(r.first_answer_invalid for r in results),
        "json_failed": sum(r.no_valid_answer for r in results),
        "median_seconds": round(statistics.median(r.seconds for r in results), 1) if count else 0,
        "median_prompt_tokens": _median([r.prompt_tokens for r in results]),
    }


def _median(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known)) if known else None
