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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection

from firebreak.incidents.config import CorrelationConfig
from firebreak.store import memory
from firebreak.store.alerts import (
    ALERTMANAGER,
    FIRING,
    OpenIncident,
    StoredAlert,
    add_alert_counts,
    add_group,
    correlated_incidents,
    firing_groups,
    incident_created_at,
    latest_incident,
    lock_correlation,
    open_incident,
    open_incidents,
    reopen,
    set_group_status,
    stored_alerts,
    stored_by_pairs,
    write_alerts,
)
from firebreak.store.db import AnyRow
from firebreak.store.escalations import stop_ladder
from firebreak.store.incidents import insert_incident, record_events
from firebreak.store.payloads import AlertmanagerPayload, AlertPayload, service_of
from firebreak.store.schemas import EventType, IncidentStatus

Scrub = Callable[[str], str]  # the alert text shown, scrubbed (incidents/alert_text.py)
MAX_FINGERPRINTS_IN_EVENT = 20
MAX_REPAIRED_IN_EVENT = 20
MAX_REPAIRED_IN_MESSAGE = 3
RESOLVED = "resolved"


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

    incident: OpenIncident
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
    write_alerts(conn, changes.inserts, changes.updates)
    group_resolved = _update_group(conn, incident, payload, alerts, changes, now, decision)
    resolve = (
        group_resolved
        and (incident.status != IncidentStatus.RESOLVED or decision.reopened)
        and not firing_groups(conn, incident.id)
    )
    _update_incident(conn, incident.id, payload, changes, now, resolve)
    events = _events(
        incident.id, changes, now, decision, resolved=resolve, payload=payload, shown=shown
    )
    if events:
        record_events(conn, events)
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
    in a few statements for the whole batch (one by one, a storm's notifications cost five
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


class _Batch:
    """What `ingest_many` read for its notifications, and the rows it has yet to write."""

    def __init__(self, conn: Connection, now: datetime, shown: Scrub = str) -> None:
        self.conn = conn
        self.now = now
        self.shown = shown
        self.open: dict[str, OpenIncident] = {}  # group key -> its open incident, and its row there
        self.stored: dict[tuple[int, str], StoredAlert] = {}  # (incident, fingerprint) -> alert
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
        self.open.update(open_incidents(self.conn, {p.group_key for p in payloads}))
        pairs = {
            (self.open[payload.group_key].id, alert.fingerprint)
            for payload in payloads
            if payload.group_key in self.open
            for alert in payload.alerts
        }
        self.stored.update(stored_by_pairs(self.conn, pairs))

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
        write_alerts(self.conn, self.alerts.inserts, self.alerts.updates)
        add_alert_counts(self.conn, list(self.counts.values()))
        if self.events:
            record_events(self.conn, self.events)
        self.alerts, self.counts, self.events = _Changes(), {}, []


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
    incident = open_incident(conn, payload.group_key)
    if incident is not None:
        return _Decision(incident)
    key = correlation.key(_labels(payload)) if correlation is not None else None
    if key is not None and lock_correlation(conn, key):
        # until commit: another replica's incident for these values is visible now
        if (incident := open_incident(conn, payload.group_key)) is not None:
            return _Decision(incident)
    latest = latest_incident(conn, payload.group_key)
    if latest is not None and not _needs_open(conn, latest, alerts):
        return _Decision(latest)  # only repeats: recorded on the last incident, opens nothing
    if latest is not None and _within(latest.resolved_at, now, reopen_window_s):
        reopen(conn, latest.id, now)
        return _Decision(latest, reopened=True)
    if not any(alert.status == FIRING for alert in alerts):
        return None
    correlated = _correlated(conn, correlation, key, now) if key is not None else []
    if correlation is not None and correlation.merge:
        for row in correlated:
            if row.status != IncidentStatus.RESOLVED.value:  # a resolved one never takes it
                joined = OpenIncident(row.id, row.status, row.created_at, None, None)
                return _Decision(joined, joined=True)
    created = _create_incident(conn, payload, shown)
    memory.link(conn, created.id, [row.id for row in correlated], now)
    return _Decision(created, created=True, correlated=tuple(row.id for row in correlated))


def _last_per_fingerprint(alerts: list[AlertPayload]) -> list[AlertPayload]:
    return list({alert.fingerprint: alert for alert in alerts}.values())


def _labels(payload: AlertmanagerPayload) -> dict[str, str]:
    """The labels that describe the group (and the incident it opens)."""
    return payload.common_labels or payload.group_labels or payload.alerts[0].labels


def _correlated(
    conn: Connection, correlation: CorrelationConfig | None, key: tuple[str, ...], now: datetime
) -> list[AnyRow]:
    """Alertmanager incidents opened within the window that share the correlation values."""
    assert correlation is not None
    since = now - timedelta(seconds=correlation.window_s)
    return correlated_incidents(conn, list(zip(correlation.labels, key, strict=True)), since)


def _needs_open(conn: Connection, incident: OpenIncident, alerts: list[AlertPayload]) -> bool:
    """True when a firing alert is news to the last (resolved) incident of the group."""
    firing = [alert for alert in alerts if alert.status == FIRING]
    if not firing:
        return False
    stored = stored_alerts(conn, incident.id, [alert.fingerprint for alert in firing])
    return any(
        (row := stored.get(alert.fingerprint)) is None
        or (alert.starts_at > row.starts_at)
        or (alert.starts_at == row.starts_at and row.status != FIRING)
        for alert in firing
    )


def _within(resolved_at: datetime | None, now: datetime, window_s: int) -> bool:
    return resolved_at is not None and now - resolved_at <= timedelta(seconds=window_s)


def _create_incident(conn: Connection, payload: AlertmanagerPayload, shown: Scrub) -> OpenIncident:
    labels = _labels(payload)
    incident_id = insert_incident(
        conn,
        group_key=payload.group_key,
        title=shown(_title(payload, labels)),
        severity=labels.get("severity") or payload.alerts[0].labels.get("severity", "unknown"),
        service=service_of(labels),
        labels=labels,
    )
    created = incident_created_at(conn, incident_id)
    return OpenIncident(incident_id, IncidentStatus.TRIGGERED.value, created, None, None)


def _title(payload: AlertmanagerPayload, labels: dict[str, str]) -> str:
    alertname = labels.get("alertname") or payload.alerts[0].labels.get("alertname", "Alert")
    summary = payload.common_annotations.get("summary") or payload.alerts[0].annotations.get(
        "summary", ""
    )
    return f"{alertname}: {summary}" if summary else alertname


def _diff_alerts(
    conn: Connection, incident_id: int, payloads: list[AlertPayload], now: datetime
) -> _Changes:
    fingerprints = [alert.fingerprint for alert in payloads]
    stored = stored_alerts(conn, incident_id, fingerprints)
    return _diff(stored, incident_id, payloads, now)


def _diff(
    stored: Mapping[str, StoredAlert | AnyRow],
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


def _update_group(
    conn: Connection,
    incident: OpenIncident,
    payload: AlertmanagerPayload,
    alerts: list[AlertPayload],
    changes: _Changes,
    now: datetime,
    decision: _Decision,
) -> bool:
    """Record the group's state in the incident; True when the group has resolved."""
    status = _group_status(incident, payload, alerts, changes, reopened=decision.reopened)
    if incident.group_status is None:
        add_group(conn, incident.id, payload.group_key, status, now)
    elif status != incident.group_status:
        set_group_status(conn, incident.id, payload.group_key, status)
    return status == RESOLVED


def _group_status(
    incident: OpenIncident,
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
    add_alert_counts(conn, [params], resolve=resolve)
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
