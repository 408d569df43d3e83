"""File source: tail reading, timestamp parsing, window filtering and limits on real files."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from firebreak.tools.config import InvestigationConfig
from firebreak.tools.files import FileSource, fetch_logs, parse_timestamp, read_tail
from firebreak.tools.models import AlertContext

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
WINDOW = InvestigationConfig(lookback_s=600, lookahead_s=120)  # [09:50, 10:02]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("2026-11-22T09:55:01.123Z ERROR x", datetime(2026, 11, 22, 9, 55, 1, 123000, UTC)),
        ("2026-11-22 09:55:01,250 ERROR app: x", datetime(2026, 11, 22, 9, 55, 1, 250000, UTC)),
        (
            "[2026-11-22T11:55:01+02:00] warn",
            datetime(2026, 11, 22, 11, 55, 1, tzinfo=timezone(timedelta(hours=2))),
        ),
        (
            'level=error ts=2026-11-22T09:55:01Z msg="x"',
            datetime(2026, 11, 22, 9, 55, 1, tzinfo=UTC),
        ),
        ("Nov 22 09:55:01 host app[12]: started", datetime(2026, 11, 22, 9, 55, 1, tzinfo=UTC)),
        (
            '10.0.0.1 - - [22/Nov/2026:09:55:01 +0000] "GET / HTTP/1.1" 500',
            datetime(2026, 11, 22, 9, 55, 1, tzinfo=UTC),
        ),
        ("1795427701.5 worker died", datetime.fromtimestamp(1795427701.5, UTC)),
        ("1795427701500 worker died", datetime.fromtimestamp(1795427701.5, UTC)),
        ("    at com.example.Foo.bar(Foo.java:42)", None),
        ("x" * 70 + " 2026-11-22T09:55:01Z: not leading", None),
    ],
)
def test_parse_timestamp(line: str, expected: datetime | None) -> None:
    assert parse_timestamp(line, reference=T0) == expected


def test_syslog_in_january_reads_december_as_last_year() -> None:
    january = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    assert parse_timestamp("Dec 31 23:59:00 host x", reference=january) == datetime(
        2026, 12, 31, 23, 59, tzinfo=UTC
    )


def test_read_tail_reads_only_the_end(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_text("".join(f"line {i:06d}\n" for i in range(100_000)))  # ~1.2 MB
    lines = read_tail(path, max_bytes=1000)
    assert lines[-1] == "line 099999"
    assert all(line.startswith("line ") and len(line) == 11 for line in lines)  # no cut line
    assert 80 <= len(lines) <= 91


async def test_window_continuations_limit_and_sources(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text(
        "\n".join(
            [
                f"{iso(T0 - timedelta(minutes=30))} ERROR too old to matter",
                "    at old.Frame(Old.java:1)",  # continuation of an out-of-window line
                f"{iso(T0 - timedelta(minutes=5))} INFO Deployment api rolled out version v7",
                f"{iso(T0 - timedelta(minutes=4))} ERROR java.lang.IllegalStateException: boom",
                "    at com.example.Api.handle(Api.java:42)",
                f"{iso(T0 + timedelta(minutes=30))} INFO far in the future",
            ]
        )
        + "\n"
    )
    (tmp_path / "worker.log").write_text(
        f"{iso(T0 - timedelta(minutes=3))} WARN queue depth 1200\n"
    )
    (tmp_path / "plain.log").write_text("no timestamps at all\nsecond line\n")
    (tmp_path / "ignored.txt").write_text(f"{iso(T0)} ERROR other glob\n")
    source = FileSource(type="file", name="files", path=str(tmp_path / "*.log"))
    alert = AlertContext(starts_at=T0)

    lines, report = await fetch_logs(source, alert, WINDOW)

    texts = [line.text for line in lines]
    assert texts[:2] == ["no timestamps at all", "second line"]  # untimed lines kept, first
    assert texts[2:] == [
        f"{iso(T0 - timedelta(minutes=5))} INFO Deployment api rolled out version v7",
        f"{iso(T0 - timedelta(minutes=4))} ERROR java.lang.IllegalStateException: boom",
        "    at com.example.Api.handle(Api.java:42)",
        f"{iso(T0 - timedelta(minutes=3))} WARN queue depth 1200",
    ]
    assert lines[4].timestamp == T0 - timedelta(minutes=4)  # continuation takes its parent's time
    assert {line.source for line in lines} == {
        "files:app.log",
        "files:worker.log",
        "files:plain.log",
    }
    assert report.kind == "file" and report.items == 6 and report.error is None

    limited = FileSource(type="file", name="files", path=str(tmp_path / "app.log"), limit=2)
    lines, report = await fetch_logs(limited, alert, WINDOW)
    assert [line.text.split(" ")[2] for line in lines] == [
        "Deployment",
        "java.lang.IllegalStateException:",
    ]


async def test_limit_keeps_errors_then_newest(tmp_path: Path) -> None:
    rows = [f"{iso(T0 - timedelta(seconds=300 - i))} INFO request {i} ok" for i in range(100)]
    rows.insert(10, f"{iso(T0 - timedelta(seconds=291))} ERROR upstream refused")
    (tmp_path / "a.log").write_text("\n".join(rows) + "\n")
    source = FileSource(type="file", name="f", path=str(tmp_path / "a.log"), limit=5)
    lines, _ = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW)
    assert len(lines) == 5
    assert lines[0].text.endswith("ERROR upstream refused")  # old but explanatory: kept
    assert [line.text.rsplit(" ", 2)[-2] for line in lines[1:]] == ["96", "97", "98", "99"]


async def test_missing_files_are_reported_not_raised(tmp_path: Path) -> None:
    source = FileSource(type="file", name="f", path=str(tmp_path / "nope" / "*.log"))
    lines, report = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW)
    assert lines == []
    assert report.error is not None and "no file matches" in report.error


async def test_reading_does_not_block_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "huge.log"
    path.write_text("".join(f"{iso(T0)} INFO line {i}\n" for i in range(5_000)))
    source = FileSource(type="file", name="f", path=str(path), limit=10)
    ticks = 0
    done = threading.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    lines, _ = await fetch_logs(source, AlertContext(starts_at=T0), WINDOW)
    done.set()
    await task
    assert len(lines) == 10
    assert ticks > 10  # the loop kept running while the file was parsed in a thread
