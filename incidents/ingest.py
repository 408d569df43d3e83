"""Turning Alertmanager notifications into incidents, in one transaction per batch.

Rules (documented in README "Alert grouping"):
- One incident per Alertmanager group (`groupKey`) while it is open.
- Alerts are keyed by fingerprint within an incident; a notification that repeats what is
  already stored (same status, startsAt, endsAt) changes nothing, so redelivery is harmless.
- A group-level `resolved` notification resolves the incident.
- A firing notification for a group with no open incident reopens the last incident when it
  was resolved less than `ingest.reopen_window_s` ago (flapping), otherwise opens a new one;
  a notification that only repeats alerts the last incident already holds opens nothing.
- A resolved-only notification for a group never seen is recorded nowhere: there is nothing
  to resolve.

The functions here are synchronous on purpose: they run through `AsyncConnection.run_sync`,
which keeps one code path for aiosqlite and asyncpg and lets a batch run without awaits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from firebreak.incidents.transitions import insert_incident, stop_ladder
from firebreak.store.incidents import INSERT_EVENT
from firebreak.store.models import Alert, Incident
from firebreak.store.payloads import AlertmanagerPayload, AlertPayload, service_of
from firebreak.store.schemas import EventType, IncidentStatus

ALERTMANAGER = "alertmanager"
MAX_FINGERPRINTS_IN_EVENT = 20


class _Open(NamedTuple):
    id: int
    status: str
    resolved_at: datetime | None


@dataclass(frozen=True)
class IngestOutcome:
    incident_id: int | None = None
    opened: bool = False  # created or reopened: start the card and an investigation
    reopened: bool = False
    resolved: bool = False
    alerts_written: int = 0


@dataclass
class _Changes:
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)


def ingest(
    conn: Connection, payload: AlertmanagerPayload, *, now: datetime, reopen_window_s: int
) -> IngestOutcome:
    """Apply one notification. The caller owns the transaction."""
    alerts = _last_per_fingerprint(payload.alerts)
    if not alerts:
        return IngestOutcome()
    incident = _find_open_incident(conn, payload.group_key)
    created = reopened = False
    if incident is None:
        incident = _latest_incident(conn, payload.group_key)
        if incident is None or _needs_open(conn, incident, alerts):
            if incident is not None and _within(incident.resolved_at, now, reopen_window_s):
                _reopen(conn, incident.id, now)
                reopened = True
            elif any(alert.status == "firing" for alert in alerts):
                incident = _create_incident(conn, payload)
                created = True
            if incident is None:
                return IngestOutcome()
    changes = _diff_alerts(conn, incident.id, alerts, now)
    _write_alerts(conn, changes)
    resolve = payload.status == "resolved" and (
        incident.status != IncidentStatus.RESOLVED or reopened
    )
    _update_incident(conn, incident.id, payload, changes, now, resolve)
    _record_events(
        conn,
        incident.id,
        changes,
        now,
        created=created,
        reopened=reopened,
        resolved=resolve,
        payload=payload,
    )
    return IngestOutcome(
        incident_id=incident.id,
        opened=created or reopened,
        reopened=reopened,
        resolved=resolve,
        alerts_written=len(changes.inserts) + len(changes.updates),
    )


def _last_per_fingerprint(alerts: list[AlertPayload]) -> list[AlertPayload]:
    return list({alert.fingerprint: alert for alert in alerts}.values())


# Statements are built once: constructing them per call cost more CPU than running them.
_OPEN_INCIDENT = select(Incident.id, Incident.status, Incident.resolved_at).where(
    Incident.group_key == bindparam("group_key"), Incident.status != IncidentStatus.RESOLVED.value
)
_LATEST_INCIDENT = (
    select(Incident.id, Incident.status, Incident.resolved_at)
    .where(Incident.group_key == bindparam("group_key"))
    .order_by(Incident.id.desc())
    .limit(1)
)
_STORED_ALERTS = select(
    Alert.id, Alert.fingerprint, Alert.status, Alert.starts_at, Alert.ends_at
).where(
    Alert.incident_id == bindparam("incident_id"),
    Alert.fingerprint.in_(bindparam("fingerprints", expanding=True)),
)
_INSERT_ALERTS = insert(Alert)
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


def _find_open_incident(conn: Connection, group_key: str) -> Row[Any] | None:
    return conn.execute(_OPEN_INCIDENT, {"group_key": group_key}).first()


def _latest_incident(conn: Connection, group_key: str) -> Row[Any] | None:
    return conn.execute(_LATEST_INCIDENT, {"group_key": group_key}).first()


def _needs_open(conn: Connection, incident: Row[Any], alerts: list[AlertPayload]) -> bool:
    """True when a firing alert is news to the last (resolved) incident of the group."""
    firing = [alert for alert in alerts if alert.status == "firing"]
    if not firing:
        return False
    stored = _stored_alerts(conn, incident.id, firing)
    return any(
        (row := stored.get(alert.fingerprint)) is None
        or (row.status, row.starts_at) != ("firing", alert.starts_at)
        for alert in firing
    )


def _stored_alerts(
    conn: Connection, incident_id: int, alerts: list[AlertPayload]
) -> dict[str, Row[Any]]:
    params = {"incident_id": incident_id, "fingerprints": [a.fingerprint for a in alerts]}
    return {row.fingerprint: row for row in conn.execute(_STORED_ALERTS, params)}


def _within(resolved_at: datetime | None, now: datetime, window_s: int) -> bool:
    return resolved_at is not None and now - resolved_at <= timedelta(seconds=window_s)


def _create_incident(conn: Connection, payload: AlertmanagerPayload) -> _Open:
    labels = payload.common_labels or payload.group_labels or payload.alerts[0].labels
    incident_id = insert_incident(
        conn,
        group_key=payload.group_key,
        title=_title(payload, labels),
        severity=labels.get("severity") or payload.alerts[0].labels.get("severity", "unknown"),
        service=service_of(labels),
        labels=labels,
    )
    return _Open(incident_id, IncidentStatus.TRIGGERED.value, None)


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
    stored = _stored_alerts(conn, incident_id, alerts)
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
        elif (row.status, row.starts_at, row.ends_at) != tuple(state.values()):
            changes.updates.append({**state, "alert_id": row.id, "updated_at": now})
    return changes


def _write_alerts(conn: Connection, changes: _Changes) -> None:
    if changes.inserts:
        conn.execute(_INSERT_ALERTS, changes.inserts)
    if changes.updates:
        conn.execute(_UPDATE_ALERT, changes.updates)


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


def _record_events(
    conn: Connection,
    incident_id: int,
    changes: _Changes,
    now: datetime,
    *,
    created: bool,
    reopened: bool,
    resolved: bool,
    payload: AlertmanagerPayload,
) -> None:
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

    if created:
        add(
            EventType.INCIDENT_CREATED,
            "Incident opened from Alertmanager group",
            {"group_key": payload.group_key},
        )
    if reopened:
        add(
            EventType.REOPENED,
            "Alert fired again shortly after resolve; incident reopened",
            {"group_key": payload.group_key},
        )
    written = changes.inserts + changes.updates
    if written:
        firing = sum(1 for alert in written if alert["status"] == "firing")
        fingerprints = [alert.get("fingerprint", alert.get("alert_id")) for alert in written]
        add(
            EventType.ALERT_RECEIVED,
            f"{len(written)} alert(s) received: {firing} firing, {len(written) - firing} resolved",
            {
                "new": len(changes.inserts),
                "changed": len(changes.updates),
                "firing": firing,
                "fingerprints": fingerprints[:MAX_FINGERPRINTS_IN_EVENT],
                "truncated_alerts": payload.truncated_alerts,
            },
        )
    if resolved:
        add(EventType.RESOLVED, "All alerts of the group resolved", {})
    if events:
        conn.execute(INSERT_EVENT, events)
