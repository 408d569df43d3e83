"""Short names for PromQL readings: the metric and the labels that tell it apart, nothing else.

A reading is what Prometheus answered for a whole expression (`sum(rate(x{…}[5m])) /
sum(rate(x{…}[5m]))`) plus the labels of one series. Printed whole, that is two lines of
syntax before the number a responder wants, and the labels are said twice (once as matchers,
once as series labels). People read `http_requests_total{code=~"5.."}`: the expression's first
metric, with the matchers that differ between its selectors of that metric (a ratio's
numerator and denominator share `service`, so only `code` says what is measured) and the
series' labels the matchers do not already say. `instance` and `job` series labels are scrape
details, left out unless a matcher asked for them. `histogram_quantile(0.99, …_bucket…)` reads
`p99 …` without `_bucket`.

The expression is parsed with `promql-parser` (the Rust parser's Python bindings); text that is
not PromQL is returned as it came. `metric_reading_text` rewrites a stored evidence line
(`QUERY{a=b} baseline=…`, what the analyses keep) the same way, for the cards.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import promql_parser

__all__ = ["Matcher", "metric_reading_text", "series_selector", "short_metric"]

SCRAPE_LABELS = frozenset({"instance", "job"})
_OPS = (  # MatchOp is not hashable: found by equality
    (promql_parser.MatchOp.Equal, "="),
    (promql_parser.MatchOp.NotEqual, "!="),
    (promql_parser.MatchOp.Re, "=~"),
    (promql_parser.MatchOp.NotRe, "!~"),
)
# A stored evidence line: the query, its series labels unquoted (`k=v,k=v`), then the numbers.
_STORED = re.compile(
    r"^(?P<query>.+?)\{(?P<labels>(?:[A-Za-z_]\w*=[^,\"{}]*)(?:,[A-Za-z_]\w*=[^,\"{}]*)*)?\}"
    r"(?P<rest> baseline=.*)$",
    re.DOTALL,
)


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str  # = != =~ !~
    value: str

    def __str__(self) -> str:
        value = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{value}"'


@dataclass(frozen=True)
class _Selector:
    metric: str | None
    matchers: tuple[Matcher, ...]


def short_metric(expr: str, series: Mapping[str, str] | None = None) -> str:
    """`expr` (and one series' labels) as the metric name plus its distinguishing labels."""
    parsed = _parse(expr)
    if parsed is None:
        return expr
    selectors = _selectors(parsed)
    named = [s for s in selectors if s.metric]
    if not named:
        return expr
    metric = named[0].metric or ""
    same = [s for s in named if s.metric == metric]
    shared = set.intersection(*(set(s.matchers) for s in same))
    kept = [m for m in same[0].matchers if len(same) == 1 or m not in shared]
    said = {m.name for s in same for m in s.matchers if m.op == "="}
    asked = {m.name for s in same for m in s.matchers}
    extra = [
        Matcher(k, "=", v)
        for k, v in sorted((series or {}).items())
        if k != "__name__" and k not in said and not (k in SCRAPE_LABELS and k not in asked)
    ]
    concrete = {m.name for m in extra}
    labels = [m for m in kept if m.name not in concrete] + extra
    name = metric
    quantile = _quantile(parsed)
    if quantile is not None:
        name = f"p{quantile * 100:g} {metric.removesuffix('_bucket')}"
    return name + _braces(labels)


def series_selector(expr: str, series: Mapping[str, str] | None = None) -> str:
    """The query and its series' labels without saying either twice: a plain selector merged
    with the labels into one selector (`up{job="api"}`), an expression followed by the labels
    of its result series (`sum by (pool) (x) {pool="a"}`). For the model, which may query again."""
    labels = {k: v for k, v in (series or {}).items() if k != "__name__"}
    parsed = _parse(expr)
    if (
        isinstance(parsed, promql_parser.VectorSelector)  # a plain selector
        and parsed.offset is None
        and parsed.at is None
        and (selector := _selectors(parsed)[0]).metric
    ):
        merged = [m for m in selector.matchers if m.name not in labels]
        merged += [Matcher(k, "=", v) for k, v in labels.items()]
        return f"{selector.metric}{_braces(merged)}"
    if not labels:
        return expr
    return f"{expr} {_braces([Matcher(k, '=', v) for k, v in labels.items()])}"


def metric_reading_text(text: str) -> str:
    """A stored metric evidence line (`QUERY{a=b,c=d} baseline=…`) with the query shortened
    by `short_metric`; any other text unchanged."""
    found = _STORED.match(text)
    if found is None:
        return text
    raw = found.group("labels") or ""
    series = dict(pair.split("=", 1) for pair in raw.split(",")) if raw else {}
    return short_metric(found.group("query"), series) + found.group("rest")


def _parse(expr: str) -> promql_parser.Expr | None:
    try:
        return promql_parser.parse(expr)
    except ValueError:
        return None


def _op_text(op: promql_parser.MatchOp) -> str:
    return next(text for known, text in _OPS if known == op)


def _selectors(expr: promql_parser.Expr) -> list[_Selector]:
    found: list[_Selector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = [Matcher(m.name, _op_text(m.op), m.value) for m in node.matchers.matchers]
            named = [m.value for m in matchers if m.name == "__name__" and m.op == "="]
            rest = tuple(m for m in matchers if m.name != "__name__")
            found.append(_Selector(node.name or (named[0] if named else None), rest))

    promql_parser.walk(expr, visit)
    return found


def _quantile(expr: promql_parser.Expr) -> float | None:
    """q of an outermost `histogram_quantile(q, …)`, through parentheses."""
    while isinstance(expr, promql_parser.ParenExpr):
        expr = expr.expr
    if isinstance(expr, promql_parser.Call) and expr.func.name == "histogram_quantile":
        first = expr.args[0] if expr.args else None
        if isinstance(first, promql_parser.NumberLiteral):
            return float(first.val)
    return None


def _braces(matchers: list[Matcher]) -> str:
    return "{" + ",".join(str(m) for m in sorted(matchers, key=_order)) + "}" if matchers else ""


def _order(matcher: Matcher) -> tuple[str, str]:
    return matcher.name, matcher.op


_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


def alert_expression(generator_url: str) -> str | None:
    """The PromQL behind an alert: `g0.expr` of its generator URL (host ignored)."""
    if not generator_url:
        return None
    values = parse_qs(urlsplit(generator_url).query).get("g0.expr")
    return values[0].strip() if values and values[0].strip() else None


def _top_level_comparison(expr: str) -> tuple[int, str] | None:
    """Position and operator of the last comparison outside (), {}, [] and strings."""
    depth, quote, found = 0, "", None
    i = 0
    while i < len(expr):
        char = expr[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
        elif depth == 0:
            for op in _COMPARISONS:
                if expr.startswith(op, i):
                    found = (i, op)
                    i += len(op) - 1
                    break
        i += 1
    return found


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def strip_threshold(expr: str) -> str:
    """`rate(x[5m]) > 0.5` → `rate(x[5m])` (also `0.5 < ...` and `> bool 0.5`); else as is."""
    found = _top_level_comparison(expr)
    if found is None:
        return expr
    position, op = found
    left, right = expr[:position].strip(), expr[position + len(op) :].strip()
    if right.startswith("bool "):
        right = right[5:].strip()
    if _is_number(right) and left:
        return left
    if _is_number(left) and right:
        return right
    return expr
