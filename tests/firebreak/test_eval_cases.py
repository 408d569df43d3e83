"""The shipped eval cases (examples/eval/): each one is a story Firebreak reads as it is.

For every case: the alert is a firing Alertmanager payload; the story materialises into logs
or series; every series answers a query Firebreak really sends (the alert's own expression, or
a template rendered with the alert's labels by Firebreak's own renderer), since the sample
Prometheus matches queries by their exact text and a series nobody asks for is evidence the
model never sees; the expected facts are regular expressions that compile; the cluster's
findings are of a kind the Kubernetes reader reports; no time in the story lies after its end.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firebreak.eval import CASES_DIR, Case, _data_dir, load_cases
from firebreak.sample import ALERT_AGE, SampleStack, materialise
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.tools import files
from firebreak.tools.config import InvestigationConfig
from firebreak.tools.models import AlertContext
from firebreak.tools.promql import alert_expression, strip_threshold
from firebreak.tools.templating import render_query

CASES = load_cases(CASES_DIR)
NOW = datetime(2027, 3, 4, 15, 30, 7, tzinfo=UTC)
KINDS = {"pod", "event", "rollout", "previous_log", "log", "job", "deployment"}
_STAMP = re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z")

each_case = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


def payload_of(case: Case) -> AlertmanagerPayload:
    return AlertmanagerPayload.model_validate_json((_data_dir(case) / "alert.json").read_text())


def alert_of(payload: AlertmanagerPayload) -> AlertContext:
    """The alert as an incident hands it to the sources (IncidentOut.alert_facts): the earliest
    firing alert, the group's labels filling in what it lacks."""
    first = min((a for a in payload.alerts if a.status == "firing"), key=lambda a: a.starts_at)
    group = payload.common_labels or payload.group_labels or first.labels
    return AlertContext(
        labels={**group, **first.labels},
        annotations=first.annotations,
        starts_at=first.starts_at,
        ends_at=first.ends_at,
        generator_url=first.generator_url,
    )


def unsent(story: SampleStack, alert: AlertContext) -> list[str]:
    """The series whose query is not what Firebreak sends for its template (or, without a
    template, for the alert's own expression)."""
    expression = alert_expression(alert.generator_url)
    own = strip_threshold(expression) if expression else None
    wrong = []
    for series in story.series:
        sent = own if series.template is None else render_query(series.template, alert)
        if series.query != sent:
            wrong.append(f"{series.name!r}: {series.query!r} is not what is sent: {sent!r}")
    return wrong


def test_the_cases_are_shipped() -> None:
    names = [case.name for case in CASES]
    assert len(names) >= 7 and len(set(names)) == len(names)
    assert "checkout-pool-after-deploy" in names  # the demo's story, shared with examples/demo


@each_case
def test_the_alert_is_a_firing_alertmanager_payload(case: Case) -> None:
    payload = payload_of(case)
    assert payload.status == "firing"
    assert any(alert.status == "firing" for alert in payload.alerts)
    assert alert_expression(alert_of(payload).generator_url), "no g0.expr in the generatorURL"


@each_case
def test_the_story_materialises_inside_the_window(case: Case, tmp_path: Path) -> None:
    story = materialise(tmp_path, NOW, source=_data_dir(case))
    assert story.log_paths or story.series, "neither a log nor a series"
    start = story.alert_start - timedelta(seconds=InvestigationConfig().lookback_s)
    end = story.alert_start + ALERT_AGE  # "now": nothing has happened after it yet
    for path in story.log_paths:
        lines = path.read_text().splitlines()
        assert lines, f"{path.name} is empty"
        for line in lines:
            stamp = files.parse_timestamp(line)
            if stamp is not None:  # a stack frame has none
                assert start <= stamp <= end, f"{path.name}: outside the window: {line[:100]}"
            quoted = [
                datetime.fromisoformat(s.replace("Z", "+00:00")) for s in _STAMP.findall(line)
            ]
            assert all(moment <= end for moment in quoted), f"{path.name}: from the future: {line}"
    for fact in case.kubernetes:
        for stamp in _STAMP.findall(fact.text):
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + story.shift
            assert moment <= end, f"{fact.object}: quotes a time after the story: {stamp}"


@each_case
def test_every_series_answers_a_query_firebreak_sends(case: Case, tmp_path: Path) -> None:
    story = materialise(tmp_path, NOW, source=_data_dir(case))
    alert = alert_of(payload_of(case))
    assert unsent(story, alert) == []
    if story.series:
        assert any(s.template is None for s in story.series), "the alert's own expression"


def test_a_query_firebreak_would_not_send_is_caught(tmp_path: Path) -> None:
    """The check above fails when a series' query drifts from its template or keeps the
    threshold Firebreak strips from the alert's expression."""
    case = next(c for c in CASES if c.name == "checkout-pool-after-deploy")
    copy = tmp_path / "case"
    shutil.copytree(_data_dir(case), copy)
    document = json.loads((copy / "metrics.json").read_text())
    own = next(s for s in document["series"] if s["template"] is None)
    own["query"] += " > 0.05"
    templated = next(s for s in document["series"] if s["template"])
    templated["query"] = templated["query"].replace('"checkout"', '"checkout-old"', 1)
    (copy / "metrics.json").write_text(json.dumps(document))
    moved = case.model_copy(update={"data": str(copy)})
    story = materialise(tmp_path / "out", NOW, source=_data_dir(moved))
    caught = unsent(story, alert_of(payload_of(moved)))
    assert [line.partition(": ")[0] for line in caught] == [
        repr(own["name"]),
        repr(templated["name"]),
    ]


@each_case
def test_the_expected_facts_compile(case: Case) -> None:
    assert case.expect is not None and case.expect.facts
    for group in case.expect.facts:
        assert group, "an empty group can never be matched"
        for pattern in group:
            re.compile(pattern, re.IGNORECASE)
    for pattern in case.expect.wrong:
        re.compile(pattern, re.IGNORECASE)


@each_case
def test_the_cluster_findings_are_what_the_reader_reports(case: Case) -> None:
    for fact in case.kubernetes:
        assert fact.kind in KINDS, fact.kind
        assert fact.object == "" or re.fullmatch(r"[a-z]+/[a-z0-9.-]+", fact.object), fact.object
        if fact.kind in ("log", "previous_log"):
            head = fact.text.partition("\n")[0]
            which = "previous" if fact.kind == "previous_log" else "terminated"
            assert re.fullmatch(rf"last \d+ lines of the {which} \S+ container \(.+\):", head)
            count = int(head.split()[1])
            assert count == len(fact.text.splitlines()) - 1, "the header counts the lines"
