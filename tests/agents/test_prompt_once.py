"""Text is scrubbed once, as items on their way in: the rendered prompt is not scrubbed again
as a whole, where a key at the end of one line and the ref starting the next (`password:` ⏎
`[L12]`) read as a key and its value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from firebreak.agents.rca_prompt import build_rca_messages, safe_alert
from firebreak.tools.models import AlertContext, Evidence, LogLine
from firebreak.tools.redact import REDACTED, Redactor

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_a_dangling_key_keeps_the_next_lines_ref_and_loses_its_value() -> None:
    redactor = Redactor()
    lines = [
        LogLine(ref=f"L{n}", source="app", timestamp=T0 + timedelta(seconds=n), text="ok")
        for n in range(1, 11)
    ]
    lines += [
        LogLine(ref="L11", source="app", timestamp=T0 + timedelta(seconds=11), text="password:"),
        LogLine(ref="L12", source="app", timestamp=T0 + timedelta(seconds=12), text="hunter2x"),
    ]
    evidence = redactor.redact_evidence(Evidence(logs=lines))
    alert = safe_alert(AlertContext(labels={"alertname": "DbDown"}, starts_at=T0), redactor)
    user = build_rca_messages(alert, evidence, redactor=redactor)[1]["content"]
    assert "[L11]" in user and "[L12]" in user, user
    assert "hunter2x" not in user and REDACTED in user


def test_the_rendered_prompt_is_what_the_items_say() -> None:
    """No second pass: an item already scrubbed is shown as it is."""
    redactor = Redactor()
    line = LogLine(ref="L1", source="app", timestamp=T0, text="token: [REDACTED] then L2 ok")
    alert = AlertContext(labels={"alertname": "X", "dbpass": "hunter2x"}, starts_at=T0)
    user = build_rca_messages(safe_alert(alert, redactor), Evidence(logs=[line]), redactor=redactor)
    assert "token: [REDACTED] then L2 ok" in user[1]["content"]
    assert "dbpass=[REDACTED]" in user[1]["content"] and "hunter2x" not in user[1]["content"]
