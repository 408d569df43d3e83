"""Charts of metric readings: SVG geometry for the incident page, a PNG for Slack.

A reading arrives as the stored evidence JSON (a dict) or as a `MetricReading`. Its points are
`samples`, pairs of (timestamp, value), read tolerantly: older analyses have none, and then the
chart says so instead of drawing an empty box. Both charts mark the alert start and the change
point the metrics reader found, the two moments a responder compares.

The SVG is geometry only (coordinates, ticks, markers); the template draws it with classes the
stylesheet colours, so the page needs no inline style and the CSP can forbid them. The PNG is
matplotlib's Agg canvas on a bare `Figure` (no pyplot: no global state), drawn by `ChartDrawer`
in a worker process: a chart costs matplotlib about 0.2 s of CPU with the GIL held, and fifty
incidents' charts drawn in a thread starved the event loop of an alert storm.
"""

from __future__ import annotations

import asyncio
import ctypes
import io
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from firebreak.tools.promql import alert_expression, strip_threshold

MAX_SAMPLES = 500  # a hostile or odd evidence document must not make a huge page
WIDTH, HEIGHT = 640, 200
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 16, 28, 28  # labels go in the top band

LOWEST_PRIORITY = 19  # os.nice increment for the chart worker (Unix niceness tops out at 19)
Sample = tuple[datetime, float]


@dataclass(frozen=True)
class Tick:
    at: float  # x or y in the SVG's coordinates
    label: str


@dataclass(frozen=True)
class Marker:
    kind: str  # "alert-start" | "change-point"
    x: float
    label: str
    at: datetime
    label_y: float  # each kind on its own row, so close markers do not overprint
    flip: bool  # near the right edge: the label goes left of the line


@dataclass(frozen=True)
class SvgChart:
    width: int
    height: int
    points: str  # the polyline's "x,y x,y ..."
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    markers: list[Marker]
    baseline_y: float | None
    plot_top: float
    plot_bottom: float
    plot_left: float
    plot_right: float
    summary: str  # what a screen reader (and the <title>) says


def as_dict(reading: Mapping[str, Any] | BaseModel) -> Mapping[str, Any]:
    return reading.model_dump(mode="json") if isinstance(reading, BaseModel) else reading


def samples_of(reading: Mapping[str, Any] | BaseModel) -> list[Sample]:
    """The reading's points, oldest first; malformed ones are left out."""
    raw = as_dict(reading).get("samples") or []
    found: list[Sample] = []
    for item in raw[:MAX_SAMPLES] if isinstance(raw, list) else []:
        if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2:
            continue
        at, value = _time(item[0]), _number(item[1])
        if at is not None and value is not None:
            found.append((at, value))
    return sorted(found, key=lambda sample: sample[0])


def changed_at(reading: Mapping[str, Any] | BaseModel) -> datetime | None:
    return _time(as_dict(reading).get("changed_at"))


def alert_reading(
    readings: Sequence[Mapping[str, Any]], generator_url: str
) -> Mapping[str, Any] | None:
    """The reading of the alert's own expression (its generator URL's `g0.expr`), else the
    first one (the metrics are ranked most telling first)."""
    expression = alert_expression(generator_url)
    if expression is not None:
        wanted = {expression.strip(), strip_threshold(expression).strip()}
        for reading in readings:
            if str(reading.get("query", "")).strip() in wanted:
                return reading
    return readings[0] if readings else None


def svg_chart(
    reading: Mapping[str, Any] | BaseModel, alert_start: datetime | None
) -> SvgChart | None:
    """The chart's geometry, or None when the reading kept no points."""
    samples = samples_of(reading)
    if not samples:
        return None
    change = changed_at(reading)
    baseline = _number(as_dict(reading).get("baseline"))
    moments = [at for at, _ in samples] + [m for m in (alert_start, change) if m is not None]
    t0, t1 = min(moments), max(moments)
    y_ticks = _value_ticks([v for _, v in samples] + ([baseline] if baseline is not None else []))
    low, high = y_ticks[0], y_ticks[-1]
    left, right = PAD_LEFT, WIDTH - PAD_RIGHT
    top, bottom = PAD_TOP, HEIGHT - PAD_BOTTOM
    span = (t1 - t0).total_seconds()

    def x(at: datetime) -> float:
        return round(left + (at - t0).total_seconds() / span * (right - left), 1) if span else left

    def y(value: float) -> float:
        return round(bottom - (value - low) / (high - low) * (bottom - top), 1)

    return SvgChart(
        width=WIDTH,
        height=HEIGHT,
        points=" ".join(f"{x(at)},{y(value)}" for at, value in samples),
        y_ticks=[Tick(y(v), _short(v)) for v in y_ticks],
        x_ticks=[Tick(x(at), label) for at, label in _time_labels(_time_ticks(t0, t1))],
        markers=_markers(alert_start, change, x, top - 10, right),
        baseline_y=y(baseline) if baseline is not None else None,
        plot_top=top,
        plot_bottom=bottom,
        plot_left=left,
        plot_right=right,
        summary=_summary(reading, samples, alert_start, change),
    )


def _markers(
    alert_start: datetime | None,
    change: datetime | None,
    x: Callable[[datetime], float],
    label_y: float,
    right: float,
) -> list[Marker]:
    """Labels sit beside their line, the earlier one to its left when both are drawn, so two
    close moments do not print over each other; near the right edge a label turns left."""
    found = [
        (at, kind, label)
        for at, kind, label in (
            (alert_start, "alert-start", "alert"),
            (change, "change-point", "change"),
        )
        if at is not None
    ]
    found.sort(key=lambda item: item[0])
    markers = []
    for index, (at, kind, label) in enumerate(found):
        earlier = len(found) == 2 and index == 0 and x(at) > PAD_LEFT + 90
        flip = earlier or x(at) > right - 90
        markers.append(Marker(kind, x(at), f"{label} {_clock(at)}", at, label_y, flip))
    return markers


def render_png(reading: Mapping[str, Any] | BaseModel, alert_start: datetime | None) -> bytes:
    """A PNG (800x300) of the reading with the alert start and change point marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure

    data = as_dict(reading)
    samples = samples_of(reading)
    # Fixed margins: constrained layout measured half the drawing time, for labels that fit.
    figure = Figure(figsize=(8, 3), dpi=100)
    figure.subplots_adjust(left=0.07, right=0.97, top=0.89, bottom=0.17)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(_title(data), fontsize=10, loc="left")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    if samples:
        axes.plot(
            date2num([at for at, _ in samples]), [v for _, v in samples], color="#2f6fb0", lw=1.6
        )
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
        axes.grid(axis="y", color="#dddddd", lw=0.6)
        for at, label, colour in (
            (alert_start, "alert", "#c0392b"),
            (changed_at(reading), "change", "#b7791f"),
        ):
            if at is not None:
                axes.axvline(
                    float(date2num(at)),
                    color=colour,
                    lw=1.2,
                    ls="--",
                    label=f"{label} {_clock(at)}",
                )
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="upper left", fontsize=8, frameon=False)
    else:
        axes.set_axis_off()
        axes.text(0.5, 0.5, "no points kept", ha="center", va="center", color="#666666")
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _title(data: Mapping[str, Any]) -> str:
    labels = data.get("series") or {}
    shown = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__")
    text = f"{data.get('query', '')}{{{shown}}}" if shown else str(data.get("query", ""))
    return text if len(text) <= 90 else text[:89] + "…"


def _summary(
    reading: Mapping[str, Any] | BaseModel,
    samples: list[Sample],
    alert_start: datetime | None,
    change: datetime | None,
) -> str:
    values = [value for _, value in samples]
    text = f"{_title(as_dict(reading))}: {len(samples)} points from {_short(min(values))} to "
    text += _short(max(values))
    if alert_start is not None:
        text += f"; alert at {_clock(alert_start)}"
    if change is not None:
        text += f"; change at {_clock(change)}"
    return text


def _value_ticks(values: list[float]) -> list[float]:
    """Round tick values covering `values` (matplotlib's locator); a flat line gets room."""
    from matplotlib.ticker import MaxNLocator

    low, high = min(values), max(values)
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    ticks = [float(t) for t in MaxNLocator(nbins=4).tick_values(low, high)]
    while len(ticks) > 2 and ticks[1] <= low:
        ticks.pop(0)
    while len(ticks) > 2 and ticks[-2] >= high:
        ticks.pop()
    return ticks


def _time_ticks(t0: datetime, t1: datetime) -> list[datetime]:
    """Round times (matplotlib's date locator) between `t0` and `t1`."""
    from matplotlib.dates import AutoDateLocator, num2date

    if t1 <= t0:
        return [t0]
    locator = AutoDateLocator(minticks=3, maxticks=7, tz=UTC)
    found = [num2date(value, tz=UTC) for value in locator.tick_values(t0, t1)]
    return [at for at in found if t0 <= at <= t1]


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        found = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            found = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):  # NaN, inf, years beyond 9999
            return None
    elif isinstance(value, str):
        try:
            found = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _short(value: float) -> str:
    return f"{value:.3g}"


def _clock(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%H:%M")


def _time_labels(ticks: list[datetime]) -> list[tuple[datetime, str]]:
    """Each tick with its label: `HH:MM`, or `HH:MM:SS` when ticks are closer than a minute,
    so a short window's axis never reads the same minute at every tick."""
    labels = [_clock(at) for at in ticks]
    if len(set(labels)) < len(labels):
        labels = [at.astimezone(UTC).strftime("%H:%M:%S") for at in ticks]
    return list(zip(ticks, labels, strict=True))


class ChartDrawer:
    """Draws PNG charts in one worker process, started at the first chart (matplotlib's import
    and the process cost about a second, paid only by a process that draws). The worker runs at
    the lowest CPU priority: a chart can wait, and during a storm fifty of them took a core
    from the webhook (the storm's first round at 0.7 of the second's throughput). It ends
    with its parent, also after a kill -9 (`_worker_init`)."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def png(
        self, reading: Mapping[str, Any] | BaseModel, alert_start: datetime | None
    ) -> bytes:
        if self._pool is None:
            spawn = multiprocessing.get_context("spawn")  # no forked copy of the event loop
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=spawn, initializer=_worker_init, initargs=(os.getpid(),)
            )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, render_png, reading, alert_start)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False)
            self._pool = None  # a dead worker breaks its pool for good: the next chart starts anew
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 1.0


def _worker_init(parent: int) -> None:
    """The chart worker's start: the lowest CPU priority, and its life tied to its parent's.

    A kill -9 of Firebreak runs no clean-up, and the worker, blocked reading a queue whose
    write end it holds itself, would wait forever: one orphan (and its resource tracker) per
    crash. On Linux the kernel kills it with its parent (`PR_SET_PDEATHSIG`; the pool is
    started from the event loop's thread, which lives as long as the process); elsewhere a
    thread watches the parent pid."""
    os.nice(LOWEST_PRIORITY)
    if _kill_me_with_parent():
        if os.getppid() != parent:  # it died before the request took effect
            os._exit(0)
        return
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _kill_me_with_parent() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)
