"""Reading what real models write: JSON in fences and prose, calls written as text."""

from __future__ import annotations

import json
import time

import pytest

from firebreak.tools.llm_output import MAX_SCAN_CHARS, json_object, text_tool_calls

RCA = {"root_cause": "pool exhausted", "evidence": ["L1"], "nested": {"a": [1, {"b": 2}]}}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(RCA),
        "```json\n" + json.dumps(RCA) + "\n```",
        "Here is the analysis you asked for:\n" + json.dumps(RCA, indent=2) + "\nHope it helps.",
        "```\n" + json.dumps(RCA) + "\n```\nNote: I cited L1.",
        'Example: {"x": 1}. The answer: ' + json.dumps(RCA),
    ],
    ids=["bare", "fenced", "prose-around", "fence-then-prose", "largest-wins"],
)
def test_the_answers_object_is_found_wherever_it_sits(text):
    found = json_object(text)
    assert found is not None and json.loads(found) == RCA


@pytest.mark.parametrize(
    "text", ["", "no json here", "{root_cause: pool", "[1, 2, 3]", "{" * 10_000]
)
def test_no_object_is_none(text):
    assert json_object(text) is None


def test_a_pathological_answer_is_read_in_bounded_time():
    # Thousands of unclosed objects: each failed parse would rescan the rest.
    text = '{"a": ' * 20_000 + "x"
    began = time.perf_counter()
    assert json_object(text) is None
    assert text_tool_calls(text, ["search_logs"]) == []
    assert time.perf_counter() - began < 2.0
    assert len(text) > MAX_SCAN_CHARS  # the cut applies


def test_calls_need_an_offered_tool_and_object_arguments():
    text = (
        '<tool_call>{"name": "search_logs", "arguments": {"query": "oom"}}</tool_call>\n'
        '<tool_call>{"name": "drop_database", "arguments": {}}</tool_call>\n'
        '<tool_call>{"name": "query_metrics", "arguments": "not json"}</tool_call>\n'
        '<tool_call>{"name": "query_metrics", "arguments": [1]}</tool_call>'
    )
    calls = text_tool_calls(text, ["search_logs", "query_metrics"])
    assert [(c.name, c.arguments) for c in calls] == [("search_logs", {"query": "oom"})]
    assert text_tool_calls(text, []) == []


def test_several_calls_keep_their_order_and_get_distinct_ids():
    text = (
        '{"name": "query_metrics", "arguments": {"promql": "up"}}\n'
        '{"name": "search_logs", "arguments": {"query": "error"}}'
    )
    calls = text_tool_calls(text, ["search_logs", "query_metrics"])
    assert [c.name for c in calls] == ["query_metrics", "search_logs"]
    assert len({c.id for c in calls}) == 2
