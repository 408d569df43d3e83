"""Alert and group queries for ingest (incidents/ingest.py holds the rules they serve).

Every function takes the caller's blocking `Connection` (ingest runs through
`AsyncConnection.run_sync` or on the store writer) and the caller owns the transaction.
PostgreSQL and SQLite differ in two places, both kept here: the batch lookup of stored alerts
by (incident, fingerprint) pairs (`stored_by_pairs`), and the advisory lock that serialises
decisions about correlated groups across replicas (`lock_correlation`; SQLite serialises
writers anyway).

Statements are built once: constructing them per call cost more CPU than running them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    BigInteger,
    Connection,
    bindparam,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql

from firebreak.store.db import AnyRow, insert_rows
from firebreak.store.models import Alert, Incident, IncidentGroup
from firebreak.store.schemas import IncidentStatus
from firebreak.store.text import SafeText

__all__ = [
    "ALERTMANAGER",
    "CHUNK",
    "FIRING",
    "OpenIncident",
    "StoredAlert",
    "add_alert_counts",
    "add_group",
    "correlated_incidents",
    "firing_groups",
    "incident_created_at",
    "latest_incident",
    "lock_correlation",
    "open_incident",
    "open_incidents",
    "reopen",
    "set_group_status",
    "stored_alerts",
    "stored_by_pairs",
    "write_alerts",
]

ALERTMANAGER = "alertmanager"
FIRING = "firing"
CHUNK = 500  # values per IN list (SQLite allows 32,766 bound parameters per statement)
_T = TypeVar("_T")


class StoredAlert(NamedTuple):
    """What the diff needs of a stored alert."""

    id: int
    fingerprint: str
    status: str
    starts_at: datetime
    ends_at: datetime | None


class OpenIncident(NamedTuple):
    """An incident a group belongs to (open, or the group's latest), and the group's row in it."""

    id: int
    status: str
    created_at: datetime
    resolved_at: datetime | None
    group_status: str | None  # this group's row in the incident; None: not in it yet


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
_STORED_PAIR = (  # each pair looked up on its own, through the unique index (see _pairs_query)
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


def _open(row: AnyRow | None) -> OpenIncident | None:
    return None if row is None else OpenIncident(*row)


def _chunks(values: list[_T]) -> list[list[_T]]:
    return [values[start : start + CHUNK] for start in range(0, len(values), CHUNK)]


# ---------------------------------------------------------------------- reads


def open_incident(conn: Connection, group_key: str) -> OpenIncident | None:
    """The group's open incident, if it has one."""
    return _open(conn.execute(_OPEN_INCIDENT, {"group_key": group_key}).first())


def latest_incident(conn: Connection, group_key: str) -> OpenIncident | None:
    """The group's latest incident, open or not."""
    return _open(conn.execute(_LATEST_INCIDENT, {"group_key": group_key}).first())


def open_incidents(conn: Connection, group_keys: Iterable[str]) -> dict[str, OpenIncident]:
    """Each group's open incident (the newest, should there be several), for a batch."""
    found: dict[str, OpenIncident] = {}
    for chunk in _chunks(list(group_keys)):
        for row in conn.execute(_OPEN_INCIDENTS, {"group_keys": chunk}):
            found.setdefault(row.group_key, OpenIncident(*row[:-1]))  # newest first
    return found


def stored_by_pairs(
    conn: Connection, pairs: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], StoredAlert]:
    """The stored alerts of the (incident, fingerprint) pairs, for a batch."""
    found: dict[tuple[int, str], StoredAlert] = {}
    for chunk in _chunks(list(pairs)):
        for row in conn.execute(*_pairs_query(conn, chunk)):
            found[(row.incident_id, row.fingerprint)] = StoredAlert(*row[1:])
    return found


def _pairs_query(conn: Connection, pairs: list[tuple[int, str]]) -> tuple[Any, dict[str, Any]]:
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


def stored_alerts(
    conn: Connection, incident_id: int, fingerprints: Sequence[str]
) -> dict[str, AnyRow]:
    """The incident's stored alerts of these fingerprints, by fingerprint."""
    params = {"incident_id": incident_id, "fingerprints": list(fingerprints)}
    return {row.fingerprint: row for row in conn.execute(_STORED_ALERTS, params)}


def firing_groups(conn: Connection, incident_id: int) -> int:
    """How many of the incident's groups are still firing."""
    return conn.scalar(_FIRING_GROUPS, {"incident_id": incident_id}) or 0


def correlated_incidents(
    conn: Connection, labels: Sequence[tuple[str, str]], since: datetime
) -> list[AnyRow]:
    """(id, status, created_at) of the Alertmanager incidents opened since `since` whose
    labels have all these (name, value) pairs, oldest first."""
    query = select(Incident.id, Incident.status, Incident.created_at).where(
        Incident.created_at >= since, Incident.group_key.is_not(None)
    )
    for name, value in labels:
        query = query.where(Incident.labels[name].as_string() == value)
    return list(conn.execute(query.order_by(Incident.id)))


def incident_created_at(conn: Connection, incident_id: int) -> datetime:
    found = conn.scalar(select(Incident.created_at).where(Incident.id == incident_id))
    assert found is not None
    return found


def lock_correlation(conn: Connection, key: Sequence[str]) -> bool:
    """PostgreSQL: wait for any other transaction deciding about the same correlation values,
    and hold them until commit (`pg_advisory_xact_lock`); True when locked, so the caller
    should look again for what the other transaction wrote. SQLite serialises writers: False."""
    if conn.dialect.name != "postgresql":
        return False
    digest = hashlib.blake2b("\0".join(("firebreak-correlation", *key)).encode(), digest_size=8)
    conn.execute(
        text("SELECT pg_advisory_xact_lock(:key)"),
        {"key": int.from_bytes(digest.digest(), "big", signed=True)},
    )
    return True


# ---------------------------------------------------------------------- writes


def reopen(conn: Connection, incident_id: int, now: datetime) -> None:
    """The incident is triggered again, its acknowledgement and resolution forgotten."""
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


def write_alerts(
    conn: Connection, inserts: Sequence[dict[str, Any]], updates: Sequence[dict[str, Any]]
) -> None:
    """New alert rows (`alerts` columns), then changes to stored ones (`alert_id`, `status`,
    `starts_at`, `ends_at`, `updated_at`)."""
    if inserts:
        insert_rows(conn, Alert.__table__, inserts)
    if updates:
        conn.execute(_UPDATE_ALERT, list(updates))


def add_group(
    conn: Connection, incident_id: int, group_key: str, status: str, now: datetime
) -> None:
    conn.execute(
        _INSERT_GROUP,
        {"incident_id": incident_id, "group_key": group_key, "status": status, "joined_at": now},
    )


def set_group_status(conn: Connection, incident_id: int, group_key: str, status: str) -> None:
    conn.execute(
        _GROUP_STATUS, {"in_incident": incident_id, "of_group": group_key, "group_status": status}
    )


def add_alert_counts(
    conn: Connection, counts: Sequence[dict[str, Any]], *, resolve: bool = False
) -> None:
    """Each incident's `alert_count` grows by `new_alerts`, its `truncated_alerts` becomes
    `truncated`, at `now` (the keys of each row of `counts`); with `resolve`, Alertmanager
    also resolves it."""
    statement = _RESOLVE_INCIDENT if resolve else _COUNT_ALERTS
    if len(counts) == 1:
        conn.execute(statement, counts[0])
    elif counts:
        conn.execute(statement, list(counts))
