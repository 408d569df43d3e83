"""README.md's demo transcript is what `firebreak demo` prints today (scripts/readme_demo.py
regenerates it; times, dates and ids that differ between runs are normalised away)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_demo", ROOT / "scripts/readme_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_readme_shows_the_current_demo() -> None:
    script = _script()
    shown = script.current_block((ROOT / "README.md").read_text())
    fresh = script.block(script.transcript())
    assert script.normalise(shown) == script.normalise(fresh), (
        "README.md's demo transcript is out of date: run scripts/readme_demo.py"
    )


def test_normalising_keeps_what_does_not_vary() -> None:
    script = _script()
    one = "│ 10:20:43.058 │ ESCALATED │ paged at 2026-12-01 10:18 UTC, ts 1796628548.000001"
    other = "│ 07:01:02.999 │ ESCALATED │ paged at 2027-01-31 23:59 UTC, ts 1800000000.000002"
    assert script.normalise(one) == script.normalise(other)
    assert script.normalise(one) != script.normalise(one.replace("ESCALATED", "RESOLVED"))
