"""Turning Alertmanager notifications into incidents, in one transaction per batch.

Rules (documented in README "Alert grouping"):
- A group (`groupKey`) belongs to one open incident at a time (`incident_groups`): its own, or,
  with `correlation.merge`, an open incident it joined.
- Alerts are keyed by fingerprint within an incident; a notification that repeats what is
  already stored (same status, startsAt, endsAt) changes nothing, so redelivery is harmless.
  An alert older than the one stored (an earlier startsAt: a replayed old notification) is
  ignored, so `starts_at` never moves back.
- A group-level `resolved` notification resolves the group, unless one of its alerts still
  says `firing` (then only the alerts that say resolved are); the incident resolves once every
  one of its groups has.
- A firing notification for a group with no open incident reopens the last incident when it
  was resolved less than `ingest.reopen_window_s` ago (flapping), else joins a correlated open
  incident (`correlation.merge`), else opens a new one; a notification that only repeats alerts
  the last incident already holds opens nothing. A resolved incident never takes a new group,
  and nothing is opened from alerts that are not firing.
- A new incident is linked to the incidents it correlates with (`correlation`: opened within
  `window_s`, the same values of `labels`), which each card then names.
- On PostgreSQL the decision for a correlated group is taken under a transaction-scoped
  advisory lock on its correlation values, so two replicas receiving correlated groups at the
  same moment see each other's incident instead of opening two.

The functions here are synchronous on purpose: they run through `AsyncConnection.run_sync`,
which keeps one code path for aiosqlite and asyncpg and lets a batch run without awaits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    BigInteger,
    Connection,
    Row,
    bindparam,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql

from firebreak.incidents.config import CorrelationConfig
from firebreak.incidents.transitions import insert_incident, stop_ladder
from firebreak.store import memory
from firebreak.store.db import insert_rows
from firebreak.store.models import Alert, Incident, IncidentGroup, TimelineEvent
from firebreak.store.payloads import AlertmanagerPayload, AlertPayload, service_of
from firebreak.store.schemas import EventType, IncidentStatus
from firebreak.store.text import SafeText

Scrub = Callable[[str], str]  # the alert text shown, scrubbed (incidents/alert_text.py)
ALERTMANAGER = "alertmanager"
MAX_FINGERPRINTS_IN_EVENT = 20
MAX_REPAIRED_IN_EVENT = 20
MAX_REPAIRED_IN_MESSAGE = 3
FIRING = "firing"
RESOLVED = "resolved"


class _Stored(NamedTuple):
    """What the diff needs of a stored alert."""

    id: int
    fingerprint: str
    status: str
    starts_at: datetime
    ends_at: datetime | None


class _Open(NamedTuple):
    id: int
    status: str
    created_at: datetime
    resolved_at: datetime | None
    group_status: str | None  # this group's row in the incident; None: not in it yet


@dataclass(frozen=True)
class IngestOutcome:
    incident_id: int | None = None
    opened: bool = False  # created or reopened: start the card and an investigation
    reopened: bool = False
    resolved: bool = False
    alerts_written: int = 0
    joined: bool = False  # a correlated group joined this open incident (correlation.merge)
    correlated: tuple[int, ...] = ()  # earlier incidents a new one was linked with
    resolved_after_s: float | None = None  # from opening to this resolve (a metric observes it)


@dataclass
class _Changes:
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    stale: int = 0  # alerts older than the ones stored (a replay), left alone


@dataclass
class _Decision:
    """Where a notification goes: the incident, and how it got there."""

    incident: _Open
    created: bool = False
    reopened: bool = False
    joined: bool = False
    correlated: tuple[int, ...] = ()


def ingest(
    conn: Connection,
    payload: AlertmanagerPayload,
    *,
    now: datetime,
    reopen_window_s: int,
    correlation: CorrelationConfig | None = None,
    shown: Scrub = str,
) -> IngestOutcome:
    """Apply one notification. The caller owns the transaction. `shown` turns the text built
    from labels (the title, the group's name) into what people may read: labels are stored
    as they came (grouping, routing, silences match them), their text for reading is not."""
    alerts = _last_per_fingerprint(payload.alerts)
    if not alerts:
        return IngestOutcome()
    decision = _decide(conn, payload, alerts, now, reopen_window_s, correlation, shown)
    if decision is None:
        return IngestOutcome()
    incident = decision.incident
    changes = _diff_alerts(conn, incident.id, alerts, now)
    _write_alerts(conn, changes)
    group_resolved = _update_group(conn, incident, payload, alerts, changes, now, decision)
    resolve = (
        group_resolved
        and (incident.status != IncidentStatus.RESOLVED or decision.reopened)
        and not _firing_groups(conn, incident.id)
    )
    _update_incident(conn, incident.id, payload, changes, now, resolve)
    events = _events(
        incident.id, changes, now, decision, resolved=resolve, payload=payload, shown=shown
    )
    if events:
        insert_rows(conn, TimelineEvent.__table__, events)
    return IngestOutcome(
        incident_id=incident.id,
        opened=decision.created or decision.reopened,
        reopened=decision.reopened,
        resolved=resolve,
        alerts_written=len(changes.inserts) + len(changes.updates),
        joined=decision.joined,
        correlated=decision.correlated,
        resolved_after_s=(now - incident.created_at).total_seconds() if resolve else None,
    )


def ingest_many(
    conn: Connection,
    payloads: Sequence[AlertmanagerPayload],
    *,
    now: datetime,
    reopen_window_s: int,
    correlation: CorrelationConfig | None = None,
    shown: Scrub = str,
) -> list[IngestOutcome]:
    """Apply notifications in order, with the outcomes and the rows `ingest` gives one by one,
    in a few statements for the whole batch (issue 18: a storm's notifications cost five
    statements each, and on PostgreSQL each waited for a round trip).

    The common case of a storm, more alerts for a group whose incident is open and firing,
    is read for the whole batch at once and written set-wise at the end. Anything else (a new
    group, a resolve, a reopen, a fingerprint this batch already touched) first writes what is
    buffered, then goes through `ingest` itself, and the batch reads the rest anew."""
    apply = partial(
        ingest,
        conn,
        now=now,
        reopen_window_s=reopen_window_s,
        correlation=correlation,
        shown=shown,
    )
    batch = _Batch(conn, now, shown)
    batch.read(payloads)
    outcomes: list[IngestOutcome] = []
    for index, payload in enumerate(payloads):
        outcome = batch.add(payload)
        if outcome is None:
            batch.write()
            outcome = apply(payload)
            batch.read(payloads[index + 1 :])
        outcomes.append(outcome)
    batch.write()
    return outcomes


CHUNK = 500  # values per IN list (SQLite allows 32,766 bound parameters per statement)
_T = TypeVar("_T")


class _Batch:
    """What `ingest_many` read for its notifications, and the rows it has yet to write."""

    def __init__(self, conn: Connection, now: datetime, shown: Scrub = str) -> None:
        self.conn = conn
        self.now = now
        self.shown = shown
        self.open: dict[str, _Open] = {}  # group key -> its open incident, and its row there
        self.stored: dict[tuple[int, str], _Stored] = {}  # (incident, fingerprint) -> alert
        self.touched: set[tuple[int, str]] = set()  # alerts written by this batch
        self.alerts = _Changes()  # alert rows to insert and update
        self.counts: dict[int, dict[str, Any]] = {}  # incident -> its alert-count update
        self.events: list[dict[str, Any]] = []

    def read(self, payloads: Sequence[AlertmanagerPayload]) -> None:
        """The open incidents of the notifications' groups, then those of their stored alerts
        the notifications name (two queries for the batch)."""
        self.open.clear()
        self.stored.clear()
        self.touched.clear()
        keys = list({payload.group_key for payload in payloads})
        for chunk in _chunks(keys):
            for row in self.conn.execute(_OPEN_INCIDENTS, {"group_keys": chunk}):
                self.open.setdefault(row.group_key, _Open(*row[:-1]))  # newest first
        pairs = list(
            {
                (self.open[payload.group_key].id, alert.fingerprint)
                for payload in payloads
                if payload.group_key in self.open
                for alert in payload.alerts
            }
        )
        for chunk in _chunks(pairs):
            for row in self.conn.execute(*_stored_pairs(self.conn, chunk)):
                self.stored[(row.incident_id, row.fingerprint)] = _Stored(*row[1:])

    def add(self, payload: AlertmanagerPayload) -> IngestOutcome | None:
        """Buffer a notification for an open, firing group; None: it needs `ingest` itself."""
        alerts = _last_per_fingerprint(payload.alerts)
        incident = self.open.get(payload.group_key)
        if not alerts or incident is None or incident.group_status != FIRING:
            return None
        keys = [(incident.id, alert.fingerprint) for alert in alerts]
        if any(key in self.touched for key in keys):
            return None
        stored = {key[1]: self.stored[key] for key in keys if key in self.stored}
        changes = _diff(stored, incident.id, alerts, self.now)
        if _group_status(incident, payload, alerts, changes, reopened=False) != FIRING:
            return None
        self.touched.update(keys)
        self.alerts.inserts += changes.inserts
        self.alerts.updates += changes.updates
        if changes.inserts or changes.updates:
            count = self.counts.setdefault(
                incident.id, {"incident_id": incident.id, "new_alerts": 0, "now": self.now}
            )
            count["new_alerts"] += len(changes.inserts)
            count["truncated"] = payload.truncated_alerts
        self.events += _events(
            incident.id,
            changes,
            self.now,
            _Decision(incident),
            resolved=False,
            payload=payload,
            shown=self.shown,
        )
        return IngestOutcome(
            incident_id=incident.id, alerts_written=len(changes.inserts) + len(changes.updates)
        )

    def write(self) -> None:
        """Write what is buffered, in the order `ingest` would have."""
        _write_alerts(self.conn, self.alerts)
        if self.counts:
            self.conn.execute(_COUNT_ALERTS, list(self.counts.values()))
        if self.events:
            insert_rows(self.conn, TimelineEvent.__table__, self.events)
        self.alerts, self.counts, self.events = _Changes(), {}, []


def _chunks(values: list[_T]) -> list[list[_T]]:
    return [values[start : start + CHUNK] for start in range(0, len(values), CHUNK)]


def _decide(
    conn: Connection,
    payload: AlertmanagerPayload,
    alerts: list[AlertPayload],
    now: datetime,
    reopen_window_s: int,
    correlation: CorrelationConfig | None,
    shown: Scrub = str,
) -> _Decision | None:
    """The incident this notification belongs to (None: it opens nothing and has no home)."""
    incident = _find_open_incident(conn, payload.group_key)
    if incident is not None:
        return _Decision(incident)
    key = correlation.key(_labels(payload)) if correlation is not None else None
    if key is not None and conn.dialect.name == "postgresql":
        _lock_correlation(conn, key)  # until commit: the other replica's incident is visible
        if (incident := _find_open_incident(conn, payload.group_key)) is not None:
            return _Decision(incident)
    latest = _latest_incident(conn, payload.group_key)
    if latest is not None and not _needs_open(conn, latest, alerts):
        return _Decision(latest)  # only repeats: recorded on the last incident, opens nothing
    if latest is not None and _within(latest.resolved_at, now, reopen_window_s):
        _reopen(conn, latest.id, now)
        return _Decision(latest, reopened=True)
    if not any(alert.status == FIRING for alert in alerts):
        return None
    correlated = _correlated(conn, correlation, key, now) if key is not None else []
    if correlation is not None and correlation.merge:
        for row in correlated:
            if row.status != IncidentStatus.RESOLVED.value:  # a resolved one never takes it
                joined = _Open(row.id, row.status, row.created_at, None, None)
                return _Decision(joined, joined=True)
    created = _create_incident(conn, payload, shown)
    memory.link(conn, created.id, [row.id for row in correlated], now)
    return _Decision(created, created=True, correlated=tuple(row.id for row in correlated))


def _last_per_fingerprint(alerts: list[AlertPayload]) -> list[AlertPayload]:
    return list({alert.fingerprint: alert for alert in alerts}.values())


def _labels(payload: AlertmanagerPayload) -> dict[str, str]:
    """The labels that describe the group (and the incident it opens)."""
    return payload.common_labels or payload.group_labels or payload.alerts[0].labels


# Statements are built once: constructing them per call cost more CPU than running them.
_INCIDENT_AND_GROUP = (
    Incident.id,
    Incident.status,
    Incident.created_at,
    Incident.resolved_at,
    IncidentGroup.status,
)
_OPEN_INCIDENT = (
    select(*_INCIDENT_AND_GROUP)
    .join(IncidentGroup, IncidentGroup.incident_id == Incident.id)
    .where(
        IncidentGroup.group_key == bindparam("group_key"),
        Incident.status != IncidentStatus.RESOLVED.value,
    )
    .order_by(Incident.id.desc())
    .limit(1)
)
_LATEST_INCIDENT = (
    select(*_INCIDENT_AND_GROUP)
    .join(IncidentGroup, IncidentGroup.incident_id == Incident.id)
    .where(IncidentGroup.group_key == bindparam("group_key"))
    .order_by(Incident.id.desc())
    .limit(1)
)
_OPEN_INCIDENTS = (
    select(*_INCIDENT_AND_GROUP, IncidentGroup.group_key)
    .join(IncidentGroup, IncidentGroup.incident_id == Incident.id)
    .where(
        IncidentGroup.group_key.in_(bindparam("group_keys", expanding=True)),
        Incident.status != IncidentStatus.RESOLVED.value,
    )
    .order_by(Incident.id.desc())
)
_STORED = select(
    Alert.incident_id, Alert.id, Alert.fingerprint, Alert.status, Alert.starts_at, Alert.ends_at
)
_PAIRS = (  # PostgreSQL: the pairs as a table of two arrays, one query text for any batch
    func.unnest(
        bindparam("incident_ids", type_=postgresql.ARRAY(BigInteger)),
        bindparam("fingerprints", type_=postgresql.ARRAY(SafeText())),
    )
    .table_valued("incident_id", "fingerprint")
    .render_derived(name="pairs")
)
_STORED_PAIR = (  # each pair looked up on its own, through the unique index (see _stored_pairs)
    select(Alert.id, Alert.status, Alert.starts_at, Alert.ends_at)
    .where(Alert.incident_id == _PAIRS.c.incident_id, Alert.fingerprint == _PAIRS.c.fingerprint)
    .limit(1)
    .lateral("stored")
)
_STORED_PAIRS = select(
    _PAIRS.c.incident_id,
    _STORED_PAIR.c.id,
    _PAIRS.c.fingerprint,
    _STORED_PAIR.c.status,
    _STORED_PAIR.c.starts_at,
    _STORED_PAIR.c.ends_at,
).select_from(_PAIRS.join(_STORED_PAIR, true()))
_STORED_IN_INCIDENTS = _STORED.where(
    Alert.incident_id.in_(bindparam("incident_ids", expanding=True)),
    Alert.fingerprint.in_(bindparam("fingerprints", expanding=True)),
)


def _stored_pairs(conn: Connection, pairs: list[tuple[int, str]]) -> tuple[Any, dict[str, Any]]:
    """The query for stored alerts by (incident, fingerprint), in the form each planner reads
    through the unique index. PostgreSQL 15 scans every alert for two IN lists; for a row-value
    IN list it uses the index, but the list's text changes with each batch and costs the client
    5 ms a batch to build and send; and it hashes the whole table for a join with the pairs
    until that has some 30k rows (6 ms a batch at 15k: auto_explain). So the pairs go as two
    arrays, each looked up on its own (LATERAL ... LIMIT 1): 1-2 ms for 160 pairs among 65k
    alerts, and about half the client's CPU per batch. SQLite scans every alert for a
    row-value IN list and searches two IN lists."""
    if conn.dialect.name == "postgresql":
        incident_ids, fingerprints = (list(column) for column in zip(*pairs, strict=True))
        return _STORED_PAIRS, {"incident_ids": incident_ids, "fingerprints": fingerprints}
    incident_ids = list({incident_id for incident_id, _ in pairs})
    fingerprints = list({fingerprint for _, fingerprint in pairs})
    return _STORED_IN_INCIDENTS, {"incident_ids": incident_ids, "fingerprints": fingerprints}


_FIRING_GROUPS = select(func.count()).where(
    IncidentGroup.incident_id == bindparam("incident_id"), IncidentGroup.status == FIRING
)
_STORED_ALERTS = select(
    Alert.id, Alert.fingerprint, Alert.status, Alert.starts_at, Alert.ends_at
).where(
    Alert.incident_id == bindparam("incident_id"),
    Alert.fingerprint.in_(bindparam("fingerprints", expanding=True)),
)
_UPDATE_ALERT = (
    update(Alert)
    .where(Alert.id == bindparam("alert_id"))
    .values(
        status=bindparam("status"),
        starts_at=bindparam("starts_at"),
        ends_at=bindparam("ends_at"),
        updated_at=bindparam("updated_at"),
    )
)
_INSERT_GROUP = insert(IncidentGroup)
_GROUP_STATUS = (
    update(IncidentGroup)
    .where(
        IncidentGroup.incident_id == bindparam("in_incident"),
        IncidentGroup.group_key == bindparam("of_group"),
    )
    .values(status=bindparam("group_status"))
)

_COUNT_ALERTS = (
    update(Incident)
    .where(Incident.id == bindparam("incident_id"))
    .values(
        alert_count=Incident.alert_count + bindparam("new_alerts"),
        truncated_alerts=bindparam("truncated"),
        updated_at=bindparam("now"),
    )
)
_RESOLVE_INCIDENT = _COUNT_ALERTS.values(
    status=IncidentStatus.RESOLVED.value, resolved_at=bindparam("now"), resolved_by=ALERTMANAGER
)


def _open(row: Row[Any] | None) -> _Open | None:
    return None if row is None else _Open(*row)


def _find_open_incident(conn: Connection, group_key: str) -> _Open | None:
    return _open(conn.execute(_OPEN_INCIDENT, {"group_key": group_key}).first())


def _latest_incident(conn: Connection, group_key: str) -> _Open | None:
    return _open(conn.execute(_LATEST_INCIDENT, {"group_key": group_key}).first())


def _firing_groups(conn: Connection, incident_id: int) -> int:
    return conn.scalar(_FIRING_GROUPS, {"incident_id": incident_id}) or 0


def _lock_correlation(conn: Connection, key: tuple[str, ...]) -> None:
    """PostgreSQL: wait for any other transaction deciding about the same correlation values;
    released at commit (`pg_advisory_xact_lock`)."""
    digest = hashlib.blake2b("\0".join(("firebreak-correlation", *key)).encode(), digest_size=8)
    conn.execute(
        text("SELECT pg_advisory_xact_lock(:key)"),
        {"key": int.from_bytes(digest.digest(), "big", signed=True)},
    )


def _correlated(
    conn: Connection, correlation: CorrelationConfig | None, key: tuple[str, ...], now: datetime
) -> list[Row[Any]]:
    """Alertmanager incidents opened within the window that share the correlation values."""
    assert correlation is not None
    query = select(Incident.id, Incident.status, Incident.created_at).where(
        Incident.created_at >= now - timedelta(seconds=correlation.window_s),
        Incident.group_key.is_not(None),
    )
    for name, value in zip(correlation.labels, key, strict=True):
        query = query.where(Incident.labels[name].as_string() == value)
    return list(conn.execute(query.order_by(Incident.id)))


def _needs_open(conn: Connection, incident: _Open, alerts: list[AlertPayload]) -> bool:
    """True when a firing alert is news to the last (resolved) incident of the group."""
    firing = [alert for alert in alerts if alert.status == FIRING]
    if not firing:
        return False
    stored = _stored_alerts(conn, incident.id, firing)
    return any(
        (row := stored.get(alert.fingerprint)) is None
        or (alert.starts_at > row.starts_at)
        or (alert.starts_at == row.starts_at and row.status != FIRING)
        for alert in firing
    )


def _stored_alerts(
    conn: Connection, incident_id: int, alerts: list[AlertPayload]
) -> dict[str, Row[Any]]:
    params = {"incident_id": incident_id, "fingerprints": [a.fingerprint for a in alerts]}
    return {row.fingerprint: row for row in conn.execute(_STORED_ALERTS, params)}


def _within(resolved_at: datetime | None, now: datetime, window_s: int) -> bool:
    return resolved_at is not None and now - resolved_at <= timedelta(seconds=window_s)


def _create_incident(conn: Connection, payload: AlertmanagerPayload, shown: Scrub) -> _Open:
    labels = _labels(payload)
    incident_id = insert_incident(
        conn,
        group_key=payload.group_key,
        title=shown(_title(payload, labels)),
        severity=labels.get("severity") or payload.alerts[0].labels.get("severity", "unknown"),
        service=service_of(labels),
        labels=labels,
    )
    created = conn.scalar(select(Incident.created_at).where(Incident.id == incident_id))
    assert created is not None
    return _Open(incident_id, IncidentStatus.TRIGGERED.value, created, None, None)


def _title(payload: AlertmanagerPayload, labels: dict[str, str]) -> str:
    alertname = labels.get("alertname") or payload.alerts[0].labels.get("alertname", "Alert")
    summary = payload.common_annotations.get("summary") or payload.alerts[0].annotations.get(
        "summary", ""
    )
    return f"{alertname}: {summary}" if summary else alertname


def _reopen(conn: Connection, incident_id: int, now: datetime) -> None:
    conn.execute(
        update(Incident)
        .where(Incident.id == incident_id)
        .values(
            status=IncidentStatus.TRIGGERED.value,
            resolved_at=None,
            resolved_by=None,
            acknowledged_at=None,
            acknowledged_by=None,
            updated_at=now,
        )
    )


def _diff_alerts(
    conn: Connection, incident_id: int, alerts: list[AlertPayload], now: datetime
) -> _Changes:
    return _diff(_stored_alerts(conn, incident_id, alerts), incident_id, alerts, now)


def _diff(
    stored: Mapping[str, _Stored | Row[Any]],
    incident_id: int,
    alerts: list[AlertPayload],
    now: datetime,
) -> _Changes:
    """What the notification changes about the stored alerts (by fingerprint)."""
    changes = _Changes()
    for alert in alerts:
        row = stored.get(alert.fingerprint)
        state = {"status": alert.status, "starts_at": alert.starts_at, "ends_at": alert.ends_at}
        if row is None:
            changes.inserts.append(
                {
                    **state,
                    "incident_id": incident_id,
                    "fingerprint": alert.fingerprint,
                    "labels": alert.labels,
                    "annotations": alert.annotations,
                    "generator_url": alert.generator_url,
                    "received_at": now,
                    "updated_at": now,
                }
            )
        elif alert.starts_at < row.starts_at:
            changes.stale += 1  # an older firing of this alert, replayed: the stored is newer
        elif (row.status, row.starts_at, row.ends_at) != tuple(state.values()):
            changes.updates.append({**state, "alert_id": row.id, "updated_at": now})
    return changes


def _write_alerts(conn: Connection, changes: _Changes) -> None:
    if changes.inserts:
        insert_rows(conn, Alert.__table__, changes.inserts)
    if changes.updates:
        conn.execute(_UPDATE_ALERT, changes.updates)


def _update_group(
    conn: Connection,
    incident: _Open,
    payload: AlertmanagerPayload,
    alerts: list[AlertPayload],
    changes: _Changes,
    now: datetime,
    decision: _Decision,
) -> bool:
    """Record the group's state in the incident; True when the group has resolved."""
    status = _group_status(incident, payload, alerts, changes, reopened=decision.reopened)
    if incident.group_status is None:
        conn.execute(
            _INSERT_GROUP,
            {
                "incident_id": incident.id,
                "group_key": payload.group_key,
                "status": status,
                "joined_at": now,
            },
        )
    elif status != incident.group_status:
        params = {"in_incident": incident.id, "of_group": payload.group_key}
        conn.execute(_GROUP_STATUS, {**params, "group_status": status})
    return status == RESOLVED


def _group_status(
    incident: _Open,
    payload: AlertmanagerPayload,
    alerts: list[AlertPayload],
    changes: _Changes,
    *,
    reopened: bool,
) -> str:
    """The group's state after the notification. A group is firing while any alert of it says
    so; a replay of older alerts cannot resolve it (what is stored about those is newer)."""
    written = changes.inserts + changes.updates
    firing = any(alert["status"] == FIRING for alert in written) or (
        reopened and any(alert.status == FIRING for alert in alerts)
    )
    resolved = (
        payload.status == RESOLVED
        and not changes.stale
        and not any(alert.status == FIRING for alert in alerts)
    )
    return FIRING if firing else RESOLVED if resolved else incident.group_status or FIRING


def _update_incident(
    conn: Connection,
    incident_id: int,
    payload: AlertmanagerPayload,
    changes: _Changes,
    now: datetime,
    resolve: bool,
) -> None:
    if not (changes.inserts or changes.updates or resolve):
        return
    params = {
        "incident_id": incident_id,
        "new_alerts": len(changes.inserts),
        "truncated": payload.truncated_alerts,
        "now": now,
    }
    conn.execute(_RESOLVE_INCIDENT if resolve else _COUNT_ALERTS, params)
    if resolve:  # nobody needs paging for a resolved incident, whoever resolved it
        stop_ladder(conn, incident_id)


def group_name(payload: AlertmanagerPayload) -> str:
    """The group as people read it: its group labels (`alertname=HighErrorRate`)."""
    labels = ", ".join(f"{k}={v}" for k, v in sorted(payload.group_labels.items()))
    return labels or payload.group_key[:120]


def _events(
    incident_id: int,
    changes: _Changes,
    now: datetime,
    decision: _Decision,
    *,
    resolved: bool,
    payload: AlertmanagerPayload,
    shown: Scrub = str,
) -> list[dict[str, Any]]:
    """The notification's timeline rows (the group's name as `shown` gives it)."""
    events: list[dict[str, Any]] = []

    def add(kind: EventType, message: str, data: dict[str, Any]) -> None:
        events.append(
            {
                "incident_id": incident_id,
                "at": now,
                "type": kind.value,
                "actor": ALERTMANAGER,
                "message": message,
                "data": data,
            }
        )

    group = {"group_key": shown(payload.group_key)}  # the timeline is read by people
    if decision.created:
        data = {**group, "correlated": list(decision.correlated)}
        add(EventType.INCIDENT_CREATED, "Incident opened from Alertmanager group", data)
    if decision.reopened:
        add(
            EventType.REOPENED,
            "Alert fired again shortly after resolve; incident reopened",
            group,
        )
    written = changes.inserts + changes.updates
    if written:
        name = shown(group_name(payload))
        firing = sum(1 for alert in written if alert["status"] == FIRING)
        fingerprints = [alert.get("fingerprint", alert.get("alert_id")) for alert in written]
        joined = " (a correlated group joined this incident)" if decision.joined else ""
        add(
            EventType.ALERT_RECEIVED,
            f"{len(written)} alert(s) received from group {name}{joined}: "
            f"{firing} firing, {len(written) - firing} resolved{_repaired_note(payload)}",
            {
                **group,
                "group": name,
                "joined": decision.joined,
                "new": len(changes.inserts),
                "changed": len(changes.updates),
                "firing": firing,
                "fingerprints": fingerprints[:MAX_FINGERPRINTS_IN_EVENT],
                "truncated_alerts": payload.truncated_alerts,
            }
            | ({"repaired": payload.repaired[:MAX_REPAIRED_IN_EVENT]} if payload.repaired else {}),
        )
    if resolved:
        add(EventType.RESOLVED, "All alerts of the incident's groups resolved", {})
    return events


def _repaired_note(payload: AlertmanagerPayload) -> str:
    """Says on the timeline that what people read is not byte for byte what was sent."""
    if not payload.repaired:
        return ""
    shown = ", ".join(payload.repaired[:MAX_REPAIRED_IN_MESSAGE])
    more = len(payload.repaired) - MAX_REPAIRED_IN_MESSAGE
    return f"; NUL replaced by U+FFFD in {shown}" + (f" and {more} more" if more > 0 else "")
