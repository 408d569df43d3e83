"""Which search finds similar past incidents: SQLite FTS5, PostgreSQL full-text search, or the
small TF-IDF of store/memory.py. Ranking quality on a labelled set, and latency.

Run by hand from the repository root:
    .venv/bin/python bench/similar.py [--history 3000] [--probes 200] [--pg URL]

The history is tests/support/history.py's: incidents made from failure archetypes whose alerts
and services overlap. Each probe is a new incident of a known archetype, asked two ways: as at
the start of an investigation (title and labels only: `start`) and once it has a root cause
(`rca`). Relevant answers are the incidents of its archetype (gain 2 with the same service,
1 otherwise); novel probes (archetypes never seen, new alert names) should get nothing.

Every method ranks the same way around its text score: the same alert and service first, then
the text matches. Methods:
- `same_alert`: SQL only, the latest incidents of the same alert and service (the baseline);
- `tfidf`: store.memory (cosine over the recent pool, threshold MIN_TEXT_SCORE);
- `fts5`: an FTS5 table (porter tokenizer) over the same text, OR of the probe's words, bm25;
- `pg_fts`: a tsvector column (english) with a GIN index, OR tsquery, ts_rank.
Latency is each query end to end through the async driver, methods interleaved per probe;
ratios are against `same_alert` measured in the same run. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firebreak.store import memory
from firebreak.store.db import create_engine, create_sync_engine
from firebreak.store.memory import Candidate
from firebreak.store.migrate import upgrade
from tests.support.history import Probe, Seeded, probes, seed_history

K = 3
THRESHOLDS = (0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
Ranked = list[tuple[float, int, str, str]]  # (score, id, alertname, service)
Method = Callable[[AsyncConnection, Probe, str], Awaitable[list[int]]]


def probe_candidate(probe: Probe, mode: str) -> Candidate:
    cause = probe.root_cause if mode == "rca" else None
    return Candidate(-1, probe.title, probe.service, probe.labels, cause)


def as_probe(probe: Probe, mode: str) -> memory.Probe:
    return memory.Probe(probe_candidate(probe, mode), datetime.now(UTC))


def tiered(probe: Probe, rows: Ranked) -> list[int]:
    """Same alert and service first, each tier by descending text score."""
    alertname = probe.labels["alertname"]
    rows = sorted(rows, key=lambda r: (not (r[2] == alertname and r[3] == probe.service), -r[0]))
    return [r[1] for r in rows[:K]]


def words(probe: Probe, mode: str) -> list[str]:
    found = re.findall(r"[a-z][a-z0-9]+", probe_candidate(probe, mode).text.lower())
    return sorted(set(found) - memory.STOPWORDS)


# ---------------------------------------------------------------------- the methods


async def same_alert(conn: AsyncConnection, probe: Probe, mode: str) -> list[int]:
    rows = await conn.execute(
        text(
            "SELECT id FROM incidents WHERE service = :service AND "
            + _json_text("alertname")
            + " = :alertname ORDER BY id DESC LIMIT :k"
        ),
        {"service": probe.service, "alertname": probe.labels["alertname"], "k": K},
    )
    return [row.id for row in rows]


def _json_text(key: str) -> str:
    return (
        f"json_extract(labels, '$.{key}')" if DIALECT["name"] == "sqlite" else f"labels->>'{key}'"
    )


DIALECT = {"name": "sqlite"}


async def tfidf(conn: AsyncConnection, probe: Probe, mode: str) -> list[int]:
    asked = as_probe(probe, mode)
    return [item.id for _, item in await memory.similar_incidents(conn, asked, limit=K)]


async def tfidf_pool_500(conn: AsyncConnection, probe: Probe, mode: str) -> list[int]:
    """The same over the 500 most recent incidents only: what a smaller pool costs."""
    asked = as_probe(probe, mode)
    found = await memory.similar_incidents(conn, asked, limit=K, pool=500)
    return [item.id for _, item in found]


async def fts5(conn: AsyncConnection, probe: Probe, mode: str) -> list[int]:
    query = " OR ".join(f'"{w}"' for w in words(probe, mode))
    rows = await conn.execute(
        text(
            "SELECT f.rowid AS id, -bm25(bench_fts) AS score, "
            "json_extract(i.labels, '$.alertname') AS alertname, i.service "
            "FROM bench_fts f JOIN incidents i ON i.id = f.rowid "
            "WHERE bench_fts MATCH :q ORDER BY bm25(bench_fts) LIMIT 200"
        ),
        {"q": query},
    )
    return tiered(probe, [(r.score, r.id, r.alertname, r.service) for r in rows])


async def pg_fts(conn: AsyncConnection, probe: Probe, mode: str) -> list[int]:
    query = " | ".join(words(probe, mode))
    rows = await conn.execute(
        text(
            "SELECT d.id, ts_rank(d.doc, q) AS score, i.labels->>'alertname' AS alertname, "
            "i.service FROM bench_docs d JOIN incidents i ON i.id = d.id, "
            "to_tsquery('english', :q) q WHERE d.doc @@ q ORDER BY score DESC LIMIT 200"
        ),
        {"q": query},
    )
    return tiered(probe, [(r.score, r.id, r.alertname, r.service) for r in rows])


# ---------------------------------------------------------------------- the stores


async def build_fts5(conn: AsyncConnection) -> None:
    await conn.execute(text("CREATE VIRTUAL TABLE bench_fts USING fts5(doc, tokenize='porter')"))
    for c in await memory.earlier_candidates(conn, _everything(), pool=10**6):
        await conn.execute(
            text("INSERT INTO bench_fts (rowid, doc) VALUES (:id, :doc)"),
            {"id": c.id, "doc": c.text},
        )


async def build_pg_fts(conn: AsyncConnection) -> None:
    await conn.execute(text("CREATE TABLE bench_docs (id bigint PRIMARY KEY, doc tsvector)"))
    for c in await memory.earlier_candidates(conn, _everything(), pool=10**6):
        await conn.execute(
            text("INSERT INTO bench_docs VALUES (:id, to_tsvector('english', :doc))"),
            {"id": c.id, "doc": c.text},
        )
    await conn.execute(text("CREATE INDEX bench_docs_doc ON bench_docs USING gin (doc)"))
    await conn.execute(text("ANALYZE bench_docs"))


def _everything() -> memory.Probe:
    return memory.Probe(Candidate(-1, "", "", {}, None), datetime.now(UTC))


# ---------------------------------------------------------------------- scoring


def quality(found: list[int], probe: Probe, seeded: Seeded) -> dict[str, float]:
    gains = [probe.gain(seeded.archetype.get(i), seeded.service.get(i)) for i in found]
    ideal = sorted(
        (probe.gain(a, seeded.service[i]) for i, a in seeded.archetype.items()), reverse=True
    )[:K]
    dcg = sum(g / math.log2(n + 2) for n, g in enumerate(gains))
    idcg = sum(g / math.log2(n + 2) for n, g in enumerate(ideal)) or 1.0
    first = next((n for n, g in enumerate(gains) if g), None)
    return {
        "p_at_3": sum(1 for g in gains if g) / K,
        "mrr": 0.0 if first is None else 1 / (first + 1),
        "ndcg_at_3": dcg / idcg,
    }


def summary(values: list[float]) -> float:
    return round(statistics.fmean(values), 3) if values else 0.0


async def run_store(url: str, args: argparse.Namespace, extra: dict[str, Method]) -> dict[str, Any]:
    await asyncio.to_thread(upgrade, url)
    sync = create_sync_engine(url)
    with sync.begin() as conn:
        seeded = seed_history(conn, args.history)
    sync.dispose()
    engine = create_engine(url)
    DIALECT["name"] = engine.dialect.name
    async with engine.begin() as conn:
        for name in extra:
            await {"fts5": build_fts5, "pg_fts": build_pg_fts}[name](conn)
    methods: dict[str, Method] = {
        "same_alert": same_alert,
        "tfidf": tfidf,
        "tfidf_pool_500": tfidf_pool_500,
        **extra,
    }
    asked = probes(args.probes, novel=args.novel)
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    latency: dict[str, list[float]] = {name: [] for name in methods}
    false_history: dict[str, list[int]] = {name: [] for name in methods}
    async with engine.connect() as conn:
        for method in methods.values():  # warm up
            await method(conn, asked[0], "rca")
        for number, probe in enumerate(asked):
            for mode in ("start", "rca"):
                order = list(methods.items())
                order = order[number % len(order) :] + order[: number % len(order)]
                for name, method in order:
                    began = time.perf_counter()
                    found = await method(conn, probe, mode)
                    latency[name].append((time.perf_counter() - began) * 1000)
                    if probe.novel:
                        false_history[name].append(1 if found else 0)
                    else:
                        results.setdefault(name, {}).setdefault(mode, []).append(
                            quality(found, probe, seeded)
                        )
        sweep = await threshold_sweep(conn, [p for p in asked], seeded)
    await engine.dispose()
    base = statistics.median(latency["same_alert"])
    return {
        "quality": {
            name: {
                mode: {key: summary([q[key] for q in qs]) for key in qs[0]}
                for mode, qs in modes.items()
            }
            for name, modes in results.items()
        },
        "novel_probes_given_history": {
            name: summary([float(v) for v in values]) for name, values in false_history.items()
        },
        "latency_ms": {
            name: {
                "median": round(statistics.median(values), 2),
                "p90": round(statistics.quantiles(values, n=10)[8], 2),
                "ratio_to_same_alert": round(statistics.median(values) / base, 2),
            }
            for name, values in latency.items()
        },
        "tfidf_threshold_sweep": sweep,
    }


async def threshold_sweep(
    conn: AsyncConnection, asked: list[Probe], seeded: Seeded
) -> dict[str, dict[str, float]]:
    """The TF-IDF threshold: ranking quality (rca mode) against history given to novel probes."""
    pools = {}
    for number, probe in enumerate(asked):
        asked_probe = as_probe(probe, "rca")
        pools[number] = (asked_probe.incident, await memory.earlier_candidates(conn, asked_probe))
    out: dict[str, dict[str, float]] = {}
    for threshold in THRESHOLDS:
        ndcg, novel = [], []
        for number, probe in enumerate(asked):
            candidate, found = pools[number]
            ranked = [c.id for _, c in memory.rank(candidate, found, min_text_score=threshold)][:K]
            if probe.novel:
                novel.append(1.0 if ranked else 0.0)
            else:
                ndcg.append(quality(ranked, probe, seeded)["ndcg_at_3"])
        out[str(threshold)] = {"ndcg_at_3": summary(ndcg), "novel_given_history": summary(novel)}
    return out


def pg_database(base_url: str) -> tuple[str, Callable[[], None]]:
    base = make_url(base_url)
    name = f"firebreak_bench_{uuid.uuid4().hex[:8]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return base.set(database=name).render_as_string(hide_password=False), drop


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"history": args.history, "probes": args.probes, "novel": args.novel}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = await run_store(f"sqlite+aiosqlite:///{tmp}/bench.db", args, {"fts5": fts5})
    if args.pg:
        url, drop = pg_database(args.pg)
        try:
            out["postgresql"] = await run_store(url, args, {"pg_fts": pg_fts})
        finally:
            drop()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=3000)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--novel", type=int, default=40)
    parser.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
