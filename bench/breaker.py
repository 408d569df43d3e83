"""What a circuit breaker costs per call while closed, against a bare async call.

Run by hand: `.venv/bin/python bench/breaker.py [calls]`. Both loops run in the same process
and event loop, interleaved in rounds so machine noise hits both; the figure is the median
round. Baseline: `await fn()`. Measured: `await breaker.call(fn)` on a closed breaker with its
metrics on a registry (what production does), the call succeeding. Prints one JSON object:
ns per call for both, the overhead, the ratio and the target.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

from prometheus_client import CollectorRegistry

from firebreak.tools.breaker import BreakerBoard, BreakerConfig

ROUNDS = 15


async def answer() -> int:
    return 42


async def bare(n: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(n):
        await answer()
    return (time.perf_counter_ns() - started) / n


async def guarded(n: int, call: object) -> float:
    started = time.perf_counter_ns()
    for _ in range(n):
        await call(answer)  # type: ignore[operator]
    return (time.perf_counter_ns() - started) / n


async def main(n: int) -> dict[str, float | int | str]:
    board = BreakerBoard(registry=CollectorRegistry())
    breaker = board.add("bench", BreakerConfig())
    await guarded(1000, breaker.call)  # warm up
    await bare(1000)
    bare_ns, breaker_ns = [], []
    for _ in range(ROUNDS):
        bare_ns.append(await bare(n))
        breaker_ns.append(await guarded(n, breaker.call))
    assert breaker.state == "closed"
    base, measured = statistics.median(bare_ns), statistics.median(breaker_ns)
    return {
        "calls_per_round": n,
        "rounds": ROUNDS,
        "bare_ns_per_call": round(base, 1),
        "breaker_ns_per_call": round(measured, 1),
        "overhead_ns_per_call": round(measured - base, 1),
        "ratio": round(measured / base, 2),
        "target": "overhead < 5000 ns",
    }


if __name__ == "__main__":
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(json.dumps(asyncio.run(main(calls)), indent=2))
