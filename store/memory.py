"""Incident memory: earlier incidents like this one, correlated ones, and the statistics.

Similar incidents are ranked in two tiers: first the earlier incidents of the same alert
(`alertname`) and service, then any other whose text (title, label values, root cause) is
close. Text closeness is a small TF-IDF cosine computed here, in Python, over the most recent
`pool` incidents (plus the latest of the same alert and service, however old), on SQLite and
PostgreSQL alike.

Why not the databases' own full-text search: `bench/similar.py` compares SQLite FTS5,
PostgreSQL full-text search and this on a seeded history of incidents (README, Development,
has the figures). With the root cause known all three rank the same failure first, but only a
cosine is on a fixed scale: a threshold on it gives nothing for a failure never seen before,
where FTS5's bm25 and PostgreSQL's `ts_rank` returned "similar" incidents for every such probe
(the agent would be handed misleading history). It costs more per query than the full-text
searches, once per investigation or API call; in exchange there is one code path for both
stores and no index or trigger to keep in step with the analyses.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import filterfalse
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from firebreak.store import verdicts
from firebreak.store.db import AnyRow
from firebreak.store.models import (
    Incident,
    IncidentLink,
    RemediationRun,
    TimelineEvent,
)
from firebreak.store.schemas import (
    EventType,
    Feedback,
    HistoryRef,
    IncidentStatus,
    RelatedIncident,
    Verdict,
)

DEFAULT_POOL = 2000  # recent incidents the text similarity looks at
SAME_ALERT_POOL = 50  # the latest of the same alert and service, whatever their age
MIN_TEXT_SCORE = 0.35  # cosine below this is not "like this one" (bench/similar.py)
SAME_ALERT_BONUS = 1.0  # puts the same alert and service above any text match
HISTORY_LIMIT = 3
RELATED_LIMIT = 10
MACHINE_ACTORS = frozenset({"firebreak", "alertmanager", "api"})
OFFLINE_PREFIX = "[Offline analysis] "
# Label values that name one instance rather than the kind of problem.
SKIPPED_LABELS = frozenset({"instance", "pod", "pod_name", "container_id", "uid", "fingerprint"})

_WORD = re.compile(r"[a-z][a-z0-9_]*[a-z0-9]")
_SUFFIX = re.compile(r"(?<=[a-z0-9_]{4})(?:ations|ation|ions|ion|ings|ing|ers|er|ed|es|s)$")
STOPWORDS = frozenset(
    "the a an and or of to in on at by for with from is are was were be been it its this that "
    "as not no than then so into after before during while when which who what has have had "
    "can could would should will may might very more most less".split()
)


# ---------------------------------------------------------------------- text similarity


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A light suffix strip ("exhausted", "exhaustion" -> "exhaust"): enough for paraphrased
    root causes without a stemming library. Cached: the same words come back all the time."""
    return _SUFFIX.sub("", word)


def tokens(text: str) -> list[str]:
    return list(map(stem, filterfalse(STOPWORDS.__contains__, _WORD.findall(text.lower()))))


def document(title: str, labels: dict[str, str], root_cause: str | None) -> str:
    """The text an incident is compared by."""
    values = " ".join(v for k, v in sorted(labels.items()) if k not in SKIPPED_LABELS)
    cause = (root_cause or "").removeprefix(OFFLINE_PREFIX)
    return f"{title} {values} {cause}"


class TfIdf:
    """Cosine similarity of TF-IDF vectors over one corpus. Texts are short (a title, a few
    label values, a root cause), so a word counts once however often it appears (binary tf,
    which is also what keeps this fast); idf is smoothed. A query word the corpus never saw
    weighs as the rarest word would: it makes the query less like everything, instead of being
    ignored."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.docs = [frozenset(tokens(text)) for text in texts]
        frequency: Counter[str] = Counter()
        for words in self.docs:
            frequency.update(words)
        total = len(self.docs)
        self.unseen = math.log(1 + total) + 1
        self.idf = {term: math.log((1 + total) / (1 + df)) + 1 for term, df in frequency.items()}

    def scores(self, query: str) -> list[float]:
        """The cosine of `query` against each text of the corpus, in corpus order."""
        idf = self.idf
        wanted = {term: idf.get(term, self.unseen) for term in set(tokens(query))}
        norm = math.sqrt(sum(w * w for w in wanted.values())) or 1.0
        squares = {term: w * w for term, w in idf.items()}
        out: list[float] = []
        for words in self.docs:
            length = math.sqrt(sum(map(squares.__getitem__, words)))
            dot = sum(map(squares.__getitem__, words & wanted.keys()))  # idf × idf
            out.append(dot / (length * norm) if length else 0.0)
        return out


@dataclass(frozen=True)
class Candidate:
    """What the ranking reads of an incident (its details are read for the winners only)."""

    id: int
    title: str
    service: str
    labels: dict[str, str]
    root_cause: str | None

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def text(self) -> str:
        return document(self.title, self.labels, self.root_cause)


def rank(
    probe: Candidate, candidates: Sequence[Candidate], *, min_text_score: float = MIN_TEXT_SCORE
) -> list[tuple[float, Candidate]]:
    """`candidates` like `probe`, best first: the same alert and service (by text score among
    themselves), then text matches of at least `min_text_score`. Newer first on a tie."""
    if not candidates:
        return []
    scores = TfIdf([c.text for c in candidates]).scores(probe.text)
    ranked: list[tuple[float, Candidate]] = []
    for score, candidate in zip(scores, candidates, strict=True):
        same = (
            bool(probe.alertname)
            and candidate.alertname == probe.alertname
            and candidate.service == probe.service
        )
        if same:
            ranked.append((SAME_ALERT_BONUS + score, candidate))
        elif score >= min_text_score:
            ranked.append((score, candidate))
    ranked.sort(key=lambda pair: (-pair[0], -pair[1].id))
    return ranked


# ---------------------------------------------------------------------- the queries

_CANDIDATE = select(
    Incident.id, Incident.title, Incident.service, Incident.labels, Incident.root_cause
)


def _candidate(row: AnyRow) -> Candidate:
    return Candidate(row.id, row.title, row.service, row.labels or {}, row.root_cause)


@dataclass(frozen=True)
class Probe:
    """The incident whose likes are looked for, and which incidents may be them."""

    incident: Candidate
    before: datetime  # only incidents opened at or before this
    resolved_only: bool = False


async def probe_of(
    conn: AsyncConnection, incident_id: int, *, resolved_only: bool = False
) -> Probe | None:
    row = (
        await conn.execute(
            _CANDIDATE.add_columns(Incident.created_at).where(Incident.id == incident_id)
        )
    ).first()
    if row is None:
        return None
    return Probe(_candidate(row), row.created_at, resolved_only)


async def earlier_candidates(
    conn: AsyncConnection, probe: Probe, *, pool: int = DEFAULT_POOL
) -> list[Candidate]:
    """The incidents opened before the probe's that may be like it: the `pool` most recent,
    and the latest `SAME_ALERT_POOL` of the same alert and service whatever their age."""
    incident = probe.incident
    earlier = [Incident.id != incident.id, Incident.created_at <= probe.before]
    if probe.resolved_only:
        earlier.append(Incident.status == IncidentStatus.RESOLVED.value)
    recent = _CANDIDATE.where(*earlier).order_by(Incident.id.desc()).limit(pool)
    found = {row.id: _candidate(row) for row in await conn.execute(recent)}
    if incident.alertname:
        same = (
            _CANDIDATE.where(
                *earlier,
                Incident.service == incident.service,
                Incident.labels["alertname"].as_string() == incident.alertname,
            )
            .order_by(Incident.id.desc())
            .limit(SAME_ALERT_POOL)
        )
        for row in await conn.execute(same):
            found.setdefault(row.id, _candidate(row))
    return list(found.values())


async def similar_incidents(
    conn: AsyncConnection, probe: Probe, *, limit: int, pool: int = DEFAULT_POOL
) -> list[tuple[float, RelatedIncident]]:
    """Earlier incidents like the probe's, best first, with their details."""
    candidates = await earlier_candidates(conn, probe, pool=pool)
    ranked = rank(probe.incident, candidates)[:limit]
    details = await _details(conn, [c.id for _, c in ranked])
    return [(score, details[c.id]) for score, c in ranked if c.id in details]


async def _details(conn: AsyncConnection, ids: list[int]) -> dict[int, RelatedIncident]:
    if not ids:
        return {}
    rows = await conn.execute(select(Incident).where(Incident.id.in_(ids)))
    return {row.id: related_item(0.0, row) for row in rows}


def related_item(score: float, row: Any) -> RelatedIncident:
    return RelatedIncident(
        id=row.id,
        title=row.title,
        status=IncidentStatus(row.status),
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        score=round(score, 3),
        root_cause=row.root_cause,
        resolved_by=row.resolved_by,
    )


async def related(
    conn: AsyncConnection, incident_id: int, *, pool: int = DEFAULT_POOL
) -> dict[str, list[RelatedIncident]] | None:
    """`GET /api/v1/incidents/{id}/related`: `similar` and `concurrent`; None if unknown."""
    probe = await probe_of(conn, incident_id)
    if probe is None:
        return None
    ranked = await similar_incidents(conn, probe, limit=RELATED_LIMIT, pool=pool)
    similar = [item.model_copy(update={"score": round(score, 3)}) for score, item in ranked]
    return {"similar": similar, "concurrent": await concurrent(conn, incident_id)}


async def history(
    conn: AsyncConnection, incident_id: int, *, limit: int = HISTORY_LIMIT
) -> list[HistoryRef]:
    """Up to `limit` resolved earlier incidents like this one, with how each ended, as the
    reasoning agent's history (`H1`…)."""
    probe = await probe_of(conn, incident_id, resolved_only=True)
    if probe is None:
        return []
    ranked = await similar_incidents(conn, probe, limit=limit)
    ids = [item.id for _, item in ranked]
    fixes = await _resolutions(conn, ids)
    judged = await verdicts.of_latest_analyses(conn, ids)
    return [
        _judged(
            HistoryRef(
                ref=f"H{number}",
                incident_id=item.id,
                title=item.title,
                created_at=item.created_at,
                resolved_at=item.resolved_at,
                resolved_by=item.resolved_by,
                root_cause=item.root_cause,
                resolution=fixes.get(item.id),
                score=round(score, 3),
            ),
            judged.get(item.id),
        )
        for number, (score, item) in enumerate(ranked, start=1)
    ]


def _judged(item: HistoryRef, feedback: Feedback | None) -> HistoryRef:
    """What a person said of the earlier analysis wins over it: a confirmed cause is marked
    so, a wrong one is replaced by the cause the person gave."""
    if feedback is None:
        return item
    if feedback.verdict is Verdict.CORRECT:
        return item.model_copy(update={"confirmed": True})
    return item.model_copy(update={"confirmed": False, "root_cause": feedback.actual_cause})


async def _resolutions(conn: AsyncConnection, ids: list[int]) -> dict[int, str]:
    """What fixed each incident: its last successful remediation run, else the last note a
    person wrote (questions to the bot and its answers are not notes about the fix)."""
    if not ids:
        return {}
    found: dict[int, str] = {}
    runs = await conn.execute(
        select(RemediationRun.incident_id, RemediationRun.action, RemediationRun.verified)
        .where(RemediationRun.incident_id.in_(ids), RemediationRun.ok.is_(True))
        .order_by(RemediationRun.id)
    )
    for row in runs:
        found[row.incident_id] = row.action + (" (verified)" if row.verified else "")
    notes = await conn.execute(
        select(TimelineEvent.incident_id, TimelineEvent.message, TimelineEvent.data)
        .where(
            TimelineEvent.incident_id.in_([i for i in ids if i not in found]),
            TimelineEvent.type == EventType.NOTE.value,
            TimelineEvent.actor.not_in(MACHINE_ACTORS),
        )
        .order_by(TimelineEvent.at, TimelineEvent.id)
    )
    for row in notes:
        if (row.data or {}).get("kind") not in ("question", "answer"):
            found[row.incident_id] = row.message[:300]
    return found


# ---------------------------------------------------------------------- correlation links


def link(conn: Connection, incident_id: int, others: Iterable[int], now: datetime) -> None:
    """Record `incident_id` as correlated with each of `others`, both ways."""
    rows = [
        row
        for other in others
        if other != incident_id
        for row in (
            {"incident_id": incident_id, "related_id": other, "created_at": now},
            {"incident_id": other, "related_id": incident_id, "created_at": now},
        )
    ]
    if rows:
        conn.execute(insert(IncidentLink), rows)


async def related_ids(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, list[int]]:
    """The incidents correlated with each of `ids` (for the cards and the incident JSON)."""
    if not ids:
        return {}
    rows = await conn.execute(
        select(IncidentLink.incident_id, IncidentLink.related_id)
        .where(IncidentLink.incident_id.in_(list(ids)))
        .order_by(IncidentLink.related_id)
    )
    found: dict[int, list[int]] = {}
    for row in rows:
        found.setdefault(row.incident_id, []).append(row.related_id)
    return found


async def concurrent(conn: AsyncConnection, incident_id: int) -> list[RelatedIncident]:
    """The incidents correlated with this one (`correlation`), oldest first."""
    linked = select(IncidentLink.related_id).where(IncidentLink.incident_id == incident_id)
    rows = await conn.execute(select(Incident).where(Incident.id.in_(linked)).order_by(Incident.id))
    return [related_item(1.0, row) for row in rows]


# ---------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Spread:
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            return cls(None, None)
        ordered = sorted(values)
        return cls(round(statistics.median(ordered), 3), round(_percentile(ordered, 0.9), 3))

    def json(self) -> dict[str, float | None]:
        return {"median": self.median, "p90": self.p90}


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _summary(rows: Sequence[AnyRow]) -> dict[str, Any]:
    tta = [
        (r.acknowledged_at - r.created_at).total_seconds()
        for r in rows
        if r.acknowledged_at is not None
    ]
    ttr = [(r.resolved_at - r.created_at).total_seconds() for r in rows if r.resolved_at]
    return {
        "incidents": len(rows),
        "mtta_s": Spread.of(tta).json(),
        "mttr_s": Spread.of(ttr).json(),
    }


async def stats(conn: AsyncConnection, since: datetime | None) -> dict[str, Any]:
    """`GET /api/v1/stats`: incidents opened since `since`, time to acknowledge and to resolve
    (median and p90, from opening), overall and by service."""
    query = select(
        Incident.service, Incident.created_at, Incident.acknowledged_at, Incident.resolved_at
    )
    if since is not None:
        query = query.where(Incident.created_at >= since)
    rows = list(await conn.execute(query))
    by_service: dict[str, list[AnyRow]] = {}
    for row in rows:
        by_service.setdefault(row.service, []).append(row)
    return {
        **_summary(rows),
        "since": since.isoformat() if since else None,
        "by_service": {name: _summary(group) for name, group in sorted(by_service.items())},
    }


__all__ = [
    "Candidate",
    "Probe",
    "TfIdf",
    "concurrent",
    "document",
    "earlier_candidates",
    "history",
    "link",
    "rank",
    "related",
    "related_ids",
    "similar_incidents",
    "stats",
    "tokens",
]


@dataclass(frozen=True)
class Durations:
    acknowledge_s: float | None
    resolve_s: float | None


async def durations(conn: AsyncConnection, incident_id: int) -> Durations:
    """Time from opening to acknowledgement and to resolve (None: not yet, or no incident)."""
    row = (
        await conn.execute(
            select(Incident.created_at, Incident.acknowledged_at, Incident.resolved_at).where(
                Incident.id == incident_id
            )
        )
    ).first()
    if row is None:
        return Durations(None, None)

    def since_open(at: datetime | None) -> float | None:
        return None if at is None else (at - row.created_at).total_seconds()

    return Durations(since_open(row.acknowledged_at), since_open(row.resolved_at))


# ---------------------------------------------------------------------- postmortem facts


@dataclass(frozen=True)
class RunFact:
    """One approved remediation run, as the postmortem tells it."""

    action: str
    approved_by: str
    created_at: datetime
    phase: str
    ok: bool | None
    verified: bool | None
    output: str


async def remediation_runs(conn: AsyncConnection, incident_id: int) -> list[RunFact]:
    rows = await conn.execute(
        select(RemediationRun)
        .where(RemediationRun.incident_id == incident_id)
        .order_by(RemediationRun.id)
    )
    return [
        RunFact(r.action, r.approved_by, r.created_at, r.phase, r.ok, r.verified, r.output)
        for r in rows
    ]
