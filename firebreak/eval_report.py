"""`firebreak eval`'s output: a table per case and the totals (rich), or the same as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from firebreak.eval import CONFIDENT, Report

__all__ = ["print_report", "write_json"]

_STATUS = {
    "COMPLETED": "[green]COMPLETED[/]",
    "RECOVERED_FALLBACK": "[yellow]FALLBACK[/]",
    "FAILED": "[red]FAILED[/]",
}


def print_report(report: Report, console: Console) -> None:
    title = f"firebreak eval · {report.provider}" + (f" {report.model}" if report.model else "")
    table = Table(title=title, title_justify="left", expand=False)
    for column, justify in (
        ("case", "left"),
        ("status", "left"),
        ("right", "center"),
        ("facts", "right"),
        ("refs ok/invented", "right"),
        ("confidence", "right"),
        ("prompt tokens", "right"),
        ("seconds", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for case in report.cases:
        status = _STATUS.get(case.status, case.status)
        if case.set_aside:
            status += " [dim](set aside)[/]"
        confident_wrong = not case.correct and case.confidence >= CONFIDENT
        table.add_row(
            case.name,
            status,
            "[green]✓[/]" if case.correct else "[red]✗[/]",
            case.facts,
            f"{case.cited}/{case.invented}",
            f"[red]{case.confidence}%[/]" if confident_wrong else f"{case.confidence}%",
            "—" if case.prompt_tokens is None else f"{case.prompt_tokens:,}",
            f"{case.seconds:.1f}",
        )
    console.print(table)
    totals = report.totals
    console.print(
        f"accuracy [bold]{totals['accuracy']:.0%}[/] ({totals['correct']}/{totals['cases']}) · "
        f"set aside {totals['set_aside']} · unsupported COMPLETED "
        f"{totals['completed_unsupported']} · wrong at ≥{CONFIDENT}% {totals['wrong_confident']}"
        f" · invented refs {totals['invented_refs']} · JSON: first answer invalid "
        f"{totals['json_first_invalid']}, none valid {totals['json_failed']} · median "
        f"{totals['median_seconds']:.1f} s, {totals['median_prompt_tokens'] or '—'} prompt tokens"
    )
    for case in report.cases:
        console.print(f"[dim]{case.name}:[/] {case.root_cause[:160]}", highlight=False)


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.model_dump(mode="json"), indent=2) + "\n")
