"""Every scanner of untrusted text finishes in time linear in its input, on generated
pathological strings of up to 1 MB: long runs of `a.`, `a=`, brackets, `password` repeated,
digits, marks, and mixtures of them.

The bound (`BOUND_S`) is a regression guard, not a performance target: the quadratic patterns
these replace took 229 s on 32,000 characters of `a.`, so on 1 MB a quadratic scan takes
hours. The linear ones take well under half a second per megabyte here; 3 s leaves room for a
loaded 2-core machine while any quadratic scan still fails it by orders of magnitude.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firebreak.agents import claims
from firebreak.agents.grounding import ground
from firebreak.agents.prompts import oneline
from firebreak.agents.schema import RootCauseAnalysis
from firebreak.bot.console import mrkdwn_to_text
from firebreak.tools import evidence, files, llm_output, text
from firebreak.tools.models import AlertContext, Evidence, LogLine
from firebreak.tools.redact import Redactor, redact_processor
from firebreak.tools.safe_regex import compile_untrusted

BOUND_S = 3.0
MEGABYTE = 1_000_000
UNITS = [
    "a.", "a=", "a-", "a:", "a", " ", "\n", "1", "1.", "0a", "_a ", "*a ", "`", "```",
    "password ", "password=", "password:", "--password ", "PASS_", "token", "[", "]", "{",
    '{"a":', '"', "<a>", "</a>", "<password>", "a@", "a.b@", "eyJ-", "http://a", "http://u:p",
    "bearer ", "%3D", "xoxb-", "sk-", "-----BEGIN PRIVATE KEY-----", "2026-12-01T10:00:00Z ",
]  # fmt: skip
TOKEN = "fb-api-Tok3n/with+odd=chars&more"
REDACTOR = Redactor(patterns=[r"cust-\d{6}", r"(a+)+$"], secrets=[TOKEN, "xoxb-1-abcdefgh"])
RCA = {
    "reasoning": "r",
    "mitigation": "m",
    "prevention": "p",
    "recommendation": "x",
    "confidence_score": 50,
}


@st.composite
def pathological(draw: st.DrawFn) -> str:
    """A short mixture of units, repeated to 10 kB or 1 MB."""
    units = draw(st.lists(st.sampled_from(UNITS), min_size=1, max_size=3))
    size = draw(st.sampled_from([10_000, MEGABYTE]))
    unit = "".join(units)
    return (unit * (size // len(unit) + 1))[:size]


def _grounded(value: str) -> object:
    line = LogLine(ref="L1", source="app", text=text.cut(value, 600))
    rca = RootCauseAnalysis(root_cause=value[:500], evidence=[value[:2000], "L1"], **RCA)
    alert = AlertContext(annotations={"summary": value[:2000]}, starts_at=datetime.now(UTC))
    return ground(rca, Evidence(logs=[line]), symptoms=claims.symptom_terms(alert))


SCANNERS: dict[str, Callable[[str], object]] = {
    "redact": REDACTOR.redact,
    "redact_lines": lambda value: REDACTOR.redact_lines(value.splitlines()[:2000]),
    "signature": evidence.signature,
    "is_error": evidence.is_error,
    "is_change": evidence.is_change,
    "build_evidence": lambda value: evidence.build_evidence(
        [LogLine(source="app", text=value)], [], [], 8000
    ),
    "parse_timestamp": files.parse_timestamp,
    "json_object": llm_output.json_object,
    "text_tool_calls": lambda value: llm_output.text_tool_calls(value, ["search_logs"]),
    "cut": lambda value: text.cut(value, 600),
    "without_stamp": text.without_stamp,
    "terms": claims.terms,
    "speaks_of": lambda value: claims.speaks_of(value, [value], frozenset()),
    "ground": _grounded,
    "oneline": oneline,
    "model_regex": lambda value: compile_untrusted(r"(a+)+$|(x+x+)+y").search(value),
    # Slack messages are bounded (40,000 characters); the console renders no more.
    "mrkdwn_to_text": lambda value: mrkdwn_to_text(value[:40_000]),
}


@pytest.mark.parametrize("name", sorted(SCANNERS))
@settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(value=pathological())
def test_scanner_is_linear_on_pathological_input(name: str, value: str) -> None:
    began = time.perf_counter()
    SCANNERS[name](value)
    elapsed = time.perf_counter() - began
    assert elapsed < BOUND_S, f"{name} took {elapsed:.1f}s on {len(value)} chars of {value[:30]!r}"


def test_the_redactor_on_32k_of_a_dot_is_fast() -> None:
    """The probe's own input: 32,000 characters of `a.` took 229 s (8,000 took 14 s)."""
    began = time.perf_counter()
    Redactor().redact("a." * 16_000)
    assert time.perf_counter() - began < 1.0  # regression guard on a pathological input


def test_a_cut_marks_itself_and_never_leaves_half_a_token() -> None:
    line = "user=bob " + "x" * 50 + " sk-" + "A1b2" * 300
    cut = text.cut(line, 80)
    assert cut.endswith("…") and len(cut) <= 80
    assert "sk-" not in cut and cut.startswith("user=bob ")
    assert text.cut("short", 80) == "short"
    assert text.cut("a." * 1000, 50) == ("a." * 1000)[:49] + "…"  # one long word: a hard cut


def test_untrusted_patterns_that_need_backtracking_are_refused() -> None:
    for pattern in (r"(a)\1", r"(?=x)a", r"(?<!x)a"):
        with pytest.raises(ValueError, match="RE2"):
            compile_untrusted(pattern)
    with pytest.raises(ValueError, match=r"investigation\.redact_patterns"):
        Redactor(patterns=[r"(secret)\1"])


def test_the_stamp_reader_looks_at_the_head_only() -> None:
    line = "2026-12-01T10:00:00Z " + "a." * MEGABYTE
    began = time.perf_counter()
    assert files.parse_timestamp(line) == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert time.perf_counter() - began < 0.1


def test_a_huge_log_field_is_cut_before_it_is_scrubbed() -> None:
    processor = redact_processor(REDACTOR)
    began = time.perf_counter()
    event = processor(None, "info", {"event": "x", "detail": "a." * MEGABYTE})
    assert time.perf_counter() - began < 0.5  # bounded: one line of our own logs
    assert event["detail"].endswith("…") and len(event["detail"]) <= 8000
