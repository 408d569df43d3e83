"""Regenerate the demo transcript in README.md: run `firebreak demo` on the offline analyzer
and write its terminal output between the `<!-- demo-output -->` markers.

    .venv/bin/python scripts/readme_demo.py          # rewrite the block
    .venv/bin/python scripts/readme_demo.py --check  # exit 1 if the block is out of date

The README shows the story's opening and first card, then the audit timeline: the cards
printed again on each `chat.update` and the long RCA reply in between are cut. Times, dates and the
demo's temporary port differ between runs; `normalise` blanks them, and `--check` (like
tests/scripts/test_readme_demo.py) compares normalised text.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import io
import re
import sys
from pathlib import Path

from rich.console import Console

from firebreak.demo import run_demo
from firebreak.logs import configure_logging

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- demo-output -->\n", "<!-- /demo-output -->\n"
WIDTH = 92
CARD_TOP = "╭─ Slack #C0INCIDENTS ─"  # the incident card (a page by DM may come first)
INVESTIGATE_RULE = "The agents investigate"
TIMELINE_RULE = "The audit timeline"
CUT = "…\n"

_VARYING = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?( UTC)?"), "<datetime>"),
    (re.compile(r"\b\d{4}-\d{2}\b"), "<month>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(\.\d+)?"), "<time>"),
    (re.compile(r"\bfiring for \d+ min"), "firing for <n> min"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"\b\d{10}\.\d{6}\b"), "<ts>"),
    # the card is posted while the ladder pages level 1: either may come first
    (
        re.compile(r"Escalation level: (0 — not paged yet|\d+ of \d+ \(\w+\)|\d+)\s*"),
        "Escalation level: <n> ",
    ),
]
_RACING_LINE = re.compile(r"^│\s+📣 Paged \(level \d+\)")


def transcript() -> str:
    """One offline demo run as the terminal shows it, cut to the README's excerpt."""
    configure_logging("ERROR")
    shown = io.StringIO()
    console = Console(file=shown, width=WIDTH, highlight=False, color_system=None)
    asyncio.run(run_demo(console, offline=True))
    return excerpt(shown.getvalue())


def excerpt(output: str) -> str:
    """The story's opening, the incident card as first posted, then the audit timeline table. The
    timeline lines streamed during the investigation are left out: they race with the card
    (the table repeats them)."""
    lines = output.splitlines(keepends=True)
    investigate = next(i for i, line in enumerate(lines) if INVESTIGATE_RULE in line)
    card = next(i for i, line in enumerate(lines) if line.startswith(CARD_TOP))
    card_end = next(i for i in range(card, len(lines)) if lines[i].startswith("╰"))
    timeline = next(i for i, line in enumerate(lines) if TIMELINE_RULE in line)
    table_end = next(i for i in range(timeline, len(lines)) if lines[i].startswith("└"))
    return "".join(
        lines[: investigate + 1]
        + lines[card : card_end + 1]
        + [CUT]
        + lines[timeline : table_end + 1]
    )


def block(text: str) -> str:
    return f"{START}```text\n{text}```\n{END}"


def current_block(readme: str) -> str:
    start, end = readme.index(START), readme.index(END) + len(END)
    return readme[start:end]


def normalise(text: str) -> str:
    """`text` without what differs between runs: times, dates, message ids, whether the card
    was posted before or after the first page, and the order of timeline rows stamped at
    nearly the same instant (they are compared as a set)."""
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    out: list[str] = []
    rows: list[list[str]] = []
    for line in (line.rstrip() for line in text.splitlines()):
        if _RACING_LINE.match(line):
            continue
        if line.startswith("│ <time>"):
            rows.append([line])
        elif rows and line.startswith("│ "):
            rows[-1].append(line)
        else:
            out.extend(row_line for row in sorted(rows) for row_line in row)
            rows = []
            out.append(line)
    out.extend(row_line for row in sorted(rows) for row_line in row)
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not rewrite")
    args = parser.parse_args()
    readme = README.read_text()
    fresh = block(transcript())
    if args.check:
        shown, now = normalise(current_block(readme)), normalise(fresh)
        if shown != now:
            print("README.md's demo transcript is out of date: run scripts/readme_demo.py")
            diff = difflib.unified_diff(shown.splitlines(), now.splitlines(), lineterm="")
            print("\n".join(diff))
            return 1
        return 0
    README.write_text(readme.replace(current_block(readme), fresh))
    return 0


if __name__ == "__main__":
    sys.exit(main())
