"""The one duration formatter and the one truncate every room shows text with."""

from __future__ import annotations

from datetime import timedelta

import pytest

from firebreak.tools.text import duration, truncate


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (None, "—"),
        (-5, "0 s"),
        (45, "45 s"),
        (89.9, "89 s"),
        (90, "1 min"),
        (14 * 60 + 59, "14 min"),  # rounded down: never overstated
        (60 * 60, "1 h"),
        (74 * 60, "1 h 14 min"),
        (3 * 3600 + 5 * 60, "3 h 5 min"),
        (24 * 3600, "1 day"),
        (3 * 86400, "3 days"),
        (2 * 86400 + 3 * 3600 + 59, "2 days 3 h"),
    ],
)
def test_duration_says_how_long_in_whole_units(seconds: float | None, said: str) -> None:
    assert duration(seconds) == said


def test_duration_takes_a_timedelta_too() -> None:
    assert duration(timedelta(minutes=2)) == "2 min"
    assert duration(abs(timedelta(minutes=-2))) == "2 min"


def test_truncate_marks_the_cut_and_never_halves_an_entity() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("a" * 100, 10) == "a" * 9 + "…"
    assert truncate("word " * 10, 11) == "word word…"  # no space before the ellipsis
    assert truncate("a &amp; b", 5) == "a…"
    with pytest.raises(ValueError):
        truncate("text", 0)
