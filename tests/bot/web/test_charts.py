"""The charts: SVG geometry for the page, and the PNG for Slack drawn by matplotlib."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from firebreak.bot.web.charts import ChartDrawer, alert_reading, render_png, samples_of, svg_chart
from firebreak.tools.models import MetricReading
from tests.bot.web.seed import ERRORS_QUERY, evidence
from tests.support.processes import descendants_of, wait_gone

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def reading(**extra: object) -> dict[str, object]:
    return dict(evidence(START)["metrics"][0], **extra)


def test_png_is_a_real_png_of_sane_size() -> None:
    png = render_png(reading(), START)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.verify()  # decodes every chunk: a truncated or hand-made file fails here
    assert image.format == "PNG"
    assert image.size == (800, 300)
    assert 5_000 < len(png) < 300_000


def test_png_of_a_reading_without_points_says_so() -> None:
    png = render_png(MetricReading(ref="M1", source="prometheus", query="up"), None)
    image = Image.open(io.BytesIO(png))
    assert image.size == (800, 300)
    colours = image.convert("L").getcolors(maxcolors=100_000)
    assert colours is not None and len(colours) > 2  # the "no points kept" text is drawn


def test_svg_marks_the_alert_start_and_the_change_point_where_they_happened() -> None:
    chart = svg_chart(reading(), START)
    assert chart is not None
    marks = {m.kind: m for m in chart.markers}
    assert set(marks) == {"alert-start", "change-point"}
    assert marks["change-point"].x < marks["alert-start"].x  # the change came 90 s before
    assert marks["alert-start"].label == "alert 10:00"
    xs = [float(point.split(",")[0]) for point in chart.points.split()]
    assert xs == sorted(xs) and len(xs) == 88
    assert chart.plot_left <= min(xs) and max(xs) <= chart.plot_right
    assert chart.baseline_y is not None


def test_svg_is_none_without_points_and_ignores_malformed_ones() -> None:
    assert svg_chart(reading(samples=None), START) is None
    assert svg_chart({"query": "up"}, START) is None
    odd = [["not a time", 1], [START.isoformat(), "NaN"], [1e30, 1], "x", [START.isoformat(), 2]]
    assert samples_of(reading(samples=odd)) == [(START, 2.0)]
    flat = svg_chart(reading(samples=[[START.isoformat(), 3], [1763805700, 3]]), None)
    assert flat is not None and flat.y_ticks[0].at != flat.y_ticks[-1].at


def test_the_alert_reading_is_the_one_of_its_own_expression() -> None:
    readings = evidence(START)["metrics"][::-1]  # M2 first
    url = "http://prometheus:9090/graph?g0.expr=" + ERRORS_QUERY + " > 1&g0.tab=1"
    assert alert_reading(readings, url)["ref"] == "M1"
    assert alert_reading(readings, "")["ref"] == "M2"  # else the first (most telling)
    assert alert_reading([], url) is None


def test_a_pydantic_reading_draws_too() -> None:
    model = MetricReading(ref="M1", source="p", query="up", changed_at=START)
    assert svg_chart(model, START - timedelta(minutes=1)) is None  # no samples field yet


async def test_the_drawer_draws_in_a_worker_at_the_lowest_cpu_priority() -> None:
    drawer = ChartDrawer()
    try:
        png = await drawer.png(reading(), START)
        workers = multiprocessing.active_children()
        assert png.startswith(b"\x89PNG") and workers
        assert all(os.getpriority(os.PRIO_PROCESS, w.pid) == 19 for w in workers)
        assert os.getpriority(os.PRIO_PROCESS, 0) < 19  # the drawer's own process is not lowered
    finally:
        drawer.close()


DRAW_THEN_WAIT = """
import asyncio, json, multiprocessing
from datetime import UTC, datetime
from firebreak.bot.web.charts import ChartDrawer
from tests.bot.web.seed import evidence

async def main() -> None:
    start = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    drawer = ChartDrawer()  # held: a collected pool would end its worker itself
    png = await drawer.png(evidence(start)["metrics"][0], start)
    workers = [child.pid for child in multiprocessing.active_children()]
    print(json.dumps({"png": len(png), "workers": workers}), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_worker_ends_when_its_parent_is_killed_with_sigkill() -> None:
    """A kill -9 of Firebreak runs no clean-up: the chart worker must notice on its own, or it
    idles forever as an orphan, one more per crash."""
    root = Path(__file__).resolve().parents[3]
    parent = subprocess.Popen(
        [sys.executable, "-c", DRAW_THEN_WAIT], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        drawn = json.loads(parent.stdout.readline())
        assert drawn["png"] > 1000 and len(drawn["workers"]) == 1
        left_behind = descendants_of(parent.pid)
        assert set(drawn["workers"]) <= set(left_behind)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        orphans = wait_gone(left_behind, within=10)
        for pid in orphans:  # the test's own leftovers, by pid
            os.kill(pid, signal.SIGKILL)
        assert orphans == [], "orphans of the killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.parametrize("span_s", [50, 120, 240, 1800])
def test_x_ticks_never_all_read_the_same_time(span_s: int) -> None:
    step = span_s / 20
    samples = [
        [(START + timedelta(seconds=i * step)).isoformat().replace("+00:00", "Z"), float(i)]
        for i in range(21)
    ]
    chart = svg_chart(reading(samples=samples, changed_at=None), START)
    assert chart is not None
    labels = [tick.label for tick in chart.x_ticks]
    assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
