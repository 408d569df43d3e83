"""Regular expressions written by someone else: the model (`search_logs` on a file source), the
configuration (`investigation.redact_patterns`, remediation parameter patterns).

Python's `re` backtracks: `(a+)+$` over a few thousand characters runs for minutes, inside C,
holding the GIL, where neither a timeout nor another thread can stop it. RE2 (`google-re2`)
runs every pattern in time linear in the text and memory bounded by `MAX_MEM`; it refuses what
needs backtracking (backreferences, look-arounds), and such a pattern is refused here with
RE2's reason, never run on `re`.
"""

from __future__ import annotations

from typing import Any

import re2

__all__ = ["MAX_MEM", "PatternError", "compile_untrusted"]

MAX_MEM = 8 << 20  # RE2's own default; a pattern that needs more is refused at compile time
MAX_PATTERN_CHARS = 2000


class PatternError(ValueError):
    """A pattern RE2 cannot run (bad syntax, a backreference, a look-around, too large)."""


def compile_untrusted(pattern: str) -> Any:
    """`pattern` compiled by RE2 (its objects answer `search`, `match`, `fullmatch`, `sub`
    like `re`'s), or `PatternError` saying why not."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"longer than {MAX_PATTERN_CHARS} characters")
    options = re2.Options()
    options.max_mem = MAX_MEM
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raise PatternError(_reason(exc)) from None


def _reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else str(exc)
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", errors="replace")
    return f"{detail} (patterns run on RE2: no backreferences or look-arounds)"
