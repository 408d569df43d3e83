"""Benchmark: 10,000 pending escalation steps — start-up reconciliation, memory, lateness.

Run by hand (not a test):

    .venv/bin/python bench/escalation_reconcile.py [--n 10000] [--spread 20] [--url URL]

Default store: a fresh SQLite file in a temp dir (`--url postgresql+asyncpg://...` for PG; the
database is used as is, so point it at a scratch one). It

1. migrates, bulk-inserts N triggered incidents, each with a ladder whose next step is due
   within the next `--spread` seconds after start-up (plus 1 s);
2. baseline: times a plain SELECT of the N pending rows (what any reconciliation must read);
3. starts the real scheduler component: cold reconciliation (empty job store, N jobs written
   in bulk) — time and RSS delta, then a second, warm reconciliation (nothing to change);
4. waits until every step has fired and reports firing lateness (ESCALATED time minus the
   step's due time, as recorded by the flow itself) p50/p99/max, and checks exactly one
   ESCALATED event per incident.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import func, insert, select

from firebreak.components import QuietNotifier
from firebreak.config import Config
from firebreak.escalation.flows import EscalationService
from firebreak.incidents.events import EventBus
from firebreak.oncall.schedules import OnCall
from firebreak.scheduler.core import JobScheduler
from firebreak.store.db import create_engine, create_sync_engine
from firebreak.store.migrate import upgrade
from firebreak.store.models import EscalationState, Incident, TimelineEvent
from firebreak.store.writer import Writer


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed(url: str, n: int, spread: float) -> datetime:
    engine = create_sync_engine(url)
    start = datetime.now(UTC) + timedelta(seconds=1 + 3)  # after start-up
    policy = {
        "name": "bench",
        "match": {},
        "levels": [{"notify": ["U1"], "timeout_s": 300}, {"notify": ["U2"], "timeout_s": 300}],
        "repeat": 0,
    }
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(Incident),
            [
                {
                    "group_key": f"bench-{i}",
                    "title": f"bench {i}",
                    "status": "triggered",
                    "severity": "critical",
                    "service": "bench",
                    "labels": {},
                    "created_at": now,
                    "updated_at": now,
                    "alert_count": 1,
                    "truncated_alerts": 0,
                    "escalation_level": 1,
                }
                for i in range(n)
            ],
        )
        ids = [row.id for row in conn.execute(select(Incident.id).order_by(Incident.id))]
        conn.execute(
            insert(EscalationState),
            [
                {
                    "incident_id": incident_id,
                    "policy": policy,
                    "level": 1,
                    "cycle": 0,
                    "step": 1,
                    "next_at": start + timedelta(seconds=spread * i / n),
                }
                for i, incident_id in enumerate(ids)
            ],
        )
    engine.dispose()
    return start


def baseline_select(url: str) -> float:
    engine = create_sync_engine(url)
    with engine.connect() as conn:
        conn.execute(select(1))
        began = time.perf_counter()
        rows = conn.execute(
            select(
                EscalationState.incident_id, EscalationState.step, EscalationState.next_at
            ).where(EscalationState.next_at.is_not(None))
        ).all()
        elapsed = time.perf_counter() - began
    engine.dispose()
    assert rows
    return elapsed


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=20.0)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="firebreak-bench-"))
    url = args.url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"

    await asyncio.to_thread(upgrade, url)
    seed_began = time.perf_counter()
    await asyncio.to_thread(seed, url, args.n, args.spread)
    print(f"seeded {args.n} incidents+ladders in {time.perf_counter() - seed_began:.2f}s")

    base = min([await asyncio.to_thread(baseline_select, url) for _ in range(3)])

    config = Config(store={"url": url}, escalation={"sweep_interval_s": 3600})
    engine = create_engine(url)
    writer = Writer(create_sync_engine(url))
    rss_before = rss_mib()
    async with AsyncExitStack() as stack:
        await writer.start()
        stack.push_async_callback(writer.stop)
        scheduler = JobScheduler(url, sweep_interval_s=config.escalation.sweep_interval_s)
        escalations = EscalationService(
            engine=engine,
            writer=writer,
            bus=EventBus(),
            notifier=QuietNotifier(),
            scheduler=scheduler,
            config=config.escalation,
            resolve_targets=OnCall(config.schedules, registry=CollectorRegistry()).resolve_targets,
        )
        for kind in escalations.job_kinds():
            scheduler.register(kind)
        scheduler.register_catch_up(escalations.catch_up())
        began = time.perf_counter()
        await scheduler.start()  # election + cold reconciliation
        cold = time.perf_counter() - began
        stack.push_async_callback(scheduler.stop)
        cold_report = scheduler.last_reconcile
        rss_after = rss_mib()
        began = time.perf_counter()
        warm_report = await scheduler.reconcile()
        warm = time.perf_counter() - began

        deadline = time.monotonic() + args.spread + 120
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                fired = await conn.scalar(
                    select(func.count())
                    .select_from(TimelineEvent)
                    .where(TimelineEvent.type == "ESCALATED")
                )
            if fired >= args.n:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        async with engine.connect() as conn:
            events = (
                await conn.execute(
                    select(TimelineEvent.incident_id, TimelineEvent.at, TimelineEvent.data).where(
                        TimelineEvent.type == "ESCALATED"
                    )
                )
            ).all()
    await engine.dispose()

    lateness = sorted(
        (e.at - datetime.fromisoformat(e.data["due"])).total_seconds() for e in events
    )
    per_incident = {e.incident_id for e in events}
    p = statistics.quantiles(lateness, n=100) if len(lateness) > 1 else lateness * 99

    assert cold_report is not None
    print(f"store: {engine.url.get_backend_name()}")
    print(f"pending steps:                    {args.n}")
    print(f"baseline SELECT of pending rows:  {base * 1000:8.1f} ms")
    print(
        f"cold start (elect+reconcile):     {cold * 1000:8.1f} ms "
        f"(reconcile {cold_report.seconds * 1000:.1f} ms, wrote {cold_report.written} jobs) "
        f"= {cold_report.seconds / base:.1f}x baseline"
    )
    print(
        f"warm reconcile (nothing to do):   {warm * 1000:8.1f} ms "
        f"(wrote {warm_report.written}) = {warm_report.seconds / base:.1f}x baseline"
    )
    print(f"RSS delta over cold start:        {rss_after - rss_before:8.1f} MiB")
    print(
        f"fired: {len(events)} events for {len(per_incident)} incidents "
        f"(exactly once: {len(events) == len(per_incident) == args.n})"
    )
    print(
        f"lateness over {args.spread:g}s spread: p50 {p[49]:.3f}s  p99 {p[98]:.3f}s  "
        f"max {lateness[-1]:.3f}s  (target p99 < 1 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
