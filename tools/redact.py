"""Scrub secrets and personal data from evidence, prompts and logs.

Why: evidence goes to an LLM (possibly a hosted one) and into Slack threads; log lines from
real services contain connection strings, bearer tokens and e-mail addresses. Everything that
leaves the process passes through one `Redactor`, built once from the configured extra
patterns plus the bot's own secret values (which are scrubbed verbatim wherever they appear).

Patterns are compiled once; each is a single `re.sub` pass, so scrubbing a few hundred lines
costs well under a millisecond per line. Replacements keep the structure around the secret
(`scheme://user:[REDACTED]@host`, `password=[REDACTED]`) so a reader still sees what failed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from firebreak.tools.models import Evidence, KubeFinding, LogLine, MetricReading, SourceReport

__all__ = ["REDACTED", "Redactor", "redact_processor"]

REDACTED = "[REDACTED]"
_MIN_KNOWN_SECRET = 4  # shorter "secrets" would shred ordinary words

_Sub = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]

_SENSITIVE_KEY = (
    r"(?:api[_-]?key|apikey|access[_-]?key(?:[_-]?id)?|secret[_-]?key|secret|client[_-]?secret"
    r"|private[_-]?key|token|password|passwd|pwd|credentials?|session[_-]?id|cookie)"
)
_SENSITIVE_KEY_RE = re.compile(rf"(?i)(?:^|[\W_]){_SENSITIVE_KEY}$")


# Lookahead bodies: what follows "Bearer " is a credential, not an English word.
_CREDENTIAL_LIKE = (
    r"[A-Za-z-]*[0-9]"  # a digit somewhere in it
    r"|[A-Za-z-]*[._~+/][A-Za-z0-9]"  # a symbol inside it (a trailing full stop is prose)
    r"|[A-Za-z-]*[a-z][A-Z]"  # mixed case after the first letter
    r"|[A-Za-z]{20}"  # long
)


def _keep_quotes(match: re.Match[str]) -> str:
    value = match.group("val")
    quote = value[0] if value[:1] in {'"', "'"} else ""
    return f"{match.group('key')}{match.group('sep')}{quote}{REDACTED}{quote}"


def _aws_secret(match: re.Match[str]) -> str:
    """40 base64 characters are an AWS secret key only if they look random (mixed classes)."""
    value = match.group()
    if any(c.isupper() for c in value) and any(c.islower() for c in value):
        if any(c.isdigit() for c in value) or "/" in value or "+" in value:
            return REDACTED
    return value


_BUILTIN: tuple[_Sub, ...] = (
    # PEM private keys, complete blocks first, then a block cut off by a line limit.
    (
        re.compile(
            r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----.*?-----END \1-----", re.DOTALL
        ),
        REDACTED,
    ),
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*", re.DOTALL), REDACTED),
    # Passwords in URLs: scheme://user:pass@host -> scheme://user:[REDACTED]@host.
    (
        re.compile(r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/?#@]*:)(?!\[REDACTED\])[^\s@/?#]+@"),
        rf"\g<pre>{REDACTED}@",
    ),
    # JSON Web Tokens (header.payload.signature, both JSON parts start with `{"` -> eyJ).
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Authorization headers, whatever the scheme (Bearer, Basic, token...).
    (
        re.compile(
            r"(?i)\b(?P<head>(?:proxy-)?authorization\s*[:=]\s*[\"']?"
            r"(?:(?:bearer|basic|token|digest|apikey|negotiate)\s+)?+)(?!\[REDACTED\])[^\s\"',;]+"
        ),
        rf"\g<head>{REDACTED}",
    ),
    # A bare "Bearer <token>" elsewhere (curl lines, dumped headers). The value must look
    # like a credential, not a word: a digit or a symbol inside, mixed case, or 20+ letters.
    # Otherwise Firebreak's own "missing or wrong bearer token" lost its last word.
    (
        re.compile(
            r"(?i)\b(?P<head>bearer\s+)(?!\[REDACTED\])(?-i:(?=" + _CREDENTIAL_LIKE + r"))"
            r"[A-Za-z0-9\-._~+/]+=*"
        ),
        rf"\g<head>{REDACTED}",
    ),
    # Vendor tokens with recognisable shapes.
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}"), REDACTED),  # Slack bot/user/app tokens
    (re.compile(r"\bxapp-\d-[A-Za-z0-9-]{8,}"), REDACTED),  # Slack app-level tokens
    (
        re.compile(r"(?P<pre>https://hooks\.slack\.com/services/)[A-Za-z0-9/_-]+"),
        rf"\g<pre>{REDACTED}",
    ),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), REDACTED),  # OpenAI-style keys
    (re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"), REDACTED),  # Stripe
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}"), REDACTED),  # GitHub
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}"), REDACTED),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), REDACTED),  # GitLab
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), REDACTED),  # Google API keys
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"), REDACTED),  # AWS
    # key=value / key: value / "key": "value" where the key names a secret.
    (
        re.compile(
            rf"(?i)(?P<key>\b[\w.-]*?{_SENSITIVE_KEY})\b(?P<sep>[\"']?\s*[:=]\s*)"
            r"(?!\[REDACTED\]|[\"']\[REDACTED\])"
            r"(?P<val>\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'&,;}\])]+)"
        ),
        _keep_quotes,
    ),
    # AWS secret access keys without a telling key name: 40 random-looking base64 characters.
    (re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"), _aws_secret),
    # E-mail addresses (personal data; they also identify the on-call people).
    (
        re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
        REDACTED,
    ),
)


class Redactor:
    """Scrubs known secret values, built-in secret shapes and configured extra patterns."""

    def __init__(self, patterns: Iterable[str] = (), secrets: Iterable[str] = ()) -> None:
        subs: list[_Sub] = []
        patterns = tuple(patterns)
        values = sorted({s for s in secrets if s and len(s) >= _MIN_KNOWN_SECRET}, key=len)
        self._recipe = {"patterns": list(patterns), "secrets": values}
        if values:
            # Longest first, so a secret containing another is removed whole.
            alternation = "|".join(re.escape(v) for v in reversed(values))
            subs.append((re.compile(alternation), REDACTED))
        subs.extend(_BUILTIN)
        for pattern in patterns:
            try:
                subs.append((re.compile(pattern), REDACTED))
            except re.error as exc:
                raise ValueError(f"investigation.redact_patterns: {pattern!r}: {exc}") from None
        self._subs = tuple(subs)

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
        """The text with every secret replaced by `[REDACTED]`; idempotent."""
        if not text:
            return text
        for pattern, replacement in self._subs:
            text = pattern.sub(replacement, text)
        return text

    def redact_line(self, line: LogLine) -> LogLine:
        return line.model_copy(update={"text": self.redact(line.text)})

    def redact_metric(self, reading: MetricReading) -> MetricReading:
        series = {k: self.redact(v) for k, v in reading.series.items()}
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
        """A scrubbed copy: log text, metric queries and labels, what the clusters said,
        source error messages. A copy of `evidence`, so lists added later are kept."""
        return evidence.model_copy(
            update={
                "logs": [self.redact_line(line) for line in evidence.logs],
                "metrics": [self.redact_metric(m) for m in evidence.metrics],
                "reports": [self.redact_report(r) for r in evidence.reports],
                "kubernetes": [self.redact_finding(f) for f in evidence.kubernetes],
            }
        )

    def redact_value(self, value: Any) -> Any:
        """Recursively scrub strings inside dicts, lists and tuples; other values pass."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self._redact_item(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.redact_value(v) for v in value)
        return value

    def _redact_item(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and isinstance(value, str) and _SENSITIVE_KEY_RE.search(key):
            return REDACTED if value else value
        return self.redact_value(value)


def redact_processor(
    redactor: Redactor,
) -> Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]:
    """A structlog processor scrubbing every string in the event dict (keys named like
    secrets lose their value entirely), so secrets never reach the logs. Put it last but one,
    just before the renderer."""

    def processor(
        logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            event_dict[key] = redactor._redact_item(key, value)
        return event_dict

    return processor
