"""Scrub secrets and personal data from evidence, alerts, prompts and logs.

Why: evidence goes to an LLM (possibly a hosted one) and into Slack threads; log lines from
real services contain connection strings, bearer tokens and e-mail addresses. Everything that
enters from outside passes through one `Redactor` once, on its way in, built from the
configured extra patterns plus the bot's own secret values (scrubbed verbatim, URL-encoded and
base64-encoded wherever they appear).

Every scan is linear in the text (tools/secret_shapes.py says how): a long line costs its
length, never its square. Configured patterns run on RE2 (tools/safe_regex.py), never on the
backtracking `re`. Callers bound what they scan (`tools.text.cut`) before scanning it, so one
call never holds the GIL for long. Replacements keep the structure around the secret
(`scheme://user:[REDACTED]@host`, `password=[REDACTED]`) so a reader still sees what failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from firebreak.tools.models import Evidence, KubeFinding, LogLine, MetricReading, SourceReport
from firebreak.tools.safe_regex import PatternError, compile_untrusted
from firebreak.tools.secret_shapes import (
    REDACTED,
    SHAPES,
    STEMS,
    dangling_key,
    encodings,
    scrub_pairs,
    scrub_private_keys,
    sensitive_key,
)
from firebreak.tools.text import LEADING_STAMP, cut

__all__ = ["REDACTED", "Redactor", "redact_processor", "sensitive_key"]

_MIN_KNOWN_SECRET = 4  # shorter "secrets" would shred ordinary words
MAX_LOG_VALUE_CHARS = 8000  # a log field (an error's text, a library's message) is cut here


class Redactor:
    """Scrubs known secret values, built-in secret shapes and configured extra patterns."""

    def __init__(self, patterns: Iterable[str] = (), secrets: Iterable[str] = ()) -> None:
        patterns = tuple(patterns)
        known = {s for s in secrets if s and len(s) >= _MIN_KNOWN_SECRET}
        forms = {form for secret in known for form in encodings(secret) if form}
        # Longest first, so a secret containing another is removed whole.
        self._known = tuple(sorted(forms, key=len, reverse=True))
        extra = []
        self._recipe = {"patterns": list(patterns), "secrets": sorted(known)}
        for pattern in patterns:
            try:
                extra.append(compile_untrusted(pattern))
            except PatternError as exc:
                raise ValueError(f"investigation.redact_patterns: {pattern!r}: {exc}") from None
        self._extra = tuple(extra)

    @classmethod
    def from_config(cls, investigation: Any, secrets: Iterable[str] = ()) -> Redactor:
        """From `InvestigationConfig.redact_patterns` and e.g. `Secrets.values()`."""
        return cls(patterns=investigation.redact_patterns, secrets=secrets)

    def recipe(self) -> dict[str, list[str]]:
        """What this redactor is built from (`Redactor(**recipe)` builds the same one), for a
        process of Firebreak's own that must redact before it writes: the remediation
        supervisor. It holds secret values: hand it over a pipe, never in argv or the
        environment."""
        return {key: list(values) for key, values in self._recipe.items()}

    def redact(self, text: str) -> str:
        """The text with every secret replaced by `[REDACTED]`; idempotent, linear."""
        if not text:
            return text
        for form in self._known:
            if form in text:
                text = text.replace(form, REDACTED)
        text = scrub_private_keys(text)
        lowered = text.lower()
        for pattern, replacement, needles in SHAPES:
            if not needles or any(needle in lowered for needle in needles):
                text = pattern.sub(replacement, text)
        if any(stem in lowered for stem in STEMS):
            text = scrub_pairs(text)
        for compiled in self._extra:
            text = compiled.sub(REDACTED, text)
        return text

    def redact_lines(self, texts: Sequence[str]) -> list[str]:
        """Consecutive lines of one stream: each scrubbed, and a line after one that ends in a
        secret's key (`password:`) loses its value too, unless it starts a new entry."""
        out: list[str] = []
        pending = False
        for text in texts:
            scrubbed = self.redact(text)
            if pending:
                scrubbed = _value_line(scrubbed)
            pending = dangling_key(scrubbed)
            out.append(scrubbed)
        return out

    def redact_line(self, line: LogLine) -> LogLine:
        return line.model_copy(update={"text": self.redact(line.text)})

    def redact_metric(self, reading: MetricReading) -> MetricReading:
        series = {k: self._redact_item(k, v) for k, v in reading.series.items()}
        return reading.model_copy(update={"query": self.redact(reading.query), "series": series})

    def redact_report(self, report: SourceReport) -> SourceReport:
        if report.error is None:
            return report
        return report.model_copy(update={"error": self.redact(report.error)})

    def redact_finding(self, finding: KubeFinding) -> KubeFinding:
        return finding.model_copy(
            update={"text": self.redact(finding.text), "object": self.redact(finding.object)}
        )

    def redact_evidence(self, evidence: Evidence) -> Evidence:
        """A scrubbed copy: log text (line after line per source, see `redact_lines`), metric
        queries and labels, what the clusters said, source error messages. A copy of
        `evidence`, so lists added later are kept."""
        return evidence.model_copy(
            update={
                "logs": self._redact_logs(evidence.logs),
                "metrics": [self.redact_metric(m) for m in evidence.metrics],
                "reports": [self.redact_report(r) for r in evidence.reports],
                "kubernetes": [self.redact_finding(f) for f in evidence.kubernetes],
            }
        )

    def _redact_logs(self, logs: Sequence[LogLine]) -> list[LogLine]:
        by_source: dict[str, list[int]] = {}
        for index, line in enumerate(logs):
            by_source.setdefault(line.source, []).append(index)
        texts = [line.text for line in logs]
        for indexes in by_source.values():
            for index, text in zip(
                indexes, self.redact_lines([texts[i] for i in indexes]), strict=True
            ):
                texts[index] = text
        return [
            line.model_copy(update={"text": text}) for line, text in zip(logs, texts, strict=True)
        ]

    def redact_value(self, value: Any) -> Any:
        """Recursively scrub strings inside dicts, lists and tuples; other values pass. A
        value under a key that names a secret (`dbpass`, `api_token`) is dropped whole."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self._redact_item(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.redact_value(v) for v in value)
        return value

    def _redact_item(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and isinstance(value, str) and sensitive_key(key):
            return REDACTED if value else value
        return self.redact_value(value)


def _value_line(text: str) -> str:
    """The line after a dangling `password:`: its content is the value, unless it starts a new
    log entry (a timestamp) or is itself a `key: value` line."""
    body = text.strip()
    if not body or body.startswith(REDACTED) or LEADING_STAMP.match(text):
        return text
    if scrub_pairs(body) != body or ":" in body.split(" ", 1)[0] or "=" in body.split(" ", 1)[0]:
        return text
    indent = text[: len(text) - len(text.lstrip())]
    return f"{indent}{REDACTED}"


def redact_processor(
    redactor: Redactor,
) -> Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]:
    """A structlog processor scrubbing every string in the event dict (keys named like
    secrets lose their value entirely), so secrets never reach the logs. A string longer than
    `MAX_LOG_VALUE_CHARS` is cut (marked) first: it runs on the event loop, for every line.
    Put it last but one, just before the renderer."""

    def processor(
        logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            if isinstance(value, str) and len(value) > MAX_LOG_VALUE_CHARS:
                value = cut(value, MAX_LOG_VALUE_CHARS)  # bounded before it is scanned
            event_dict[key] = redactor._redact_item(key, value)
        return event_dict

    return processor
