"""Alertmanager version-4 payloads shaped exactly like the real ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

ZERO = "0001-01-01T00:00:00Z"


def alert(
    fingerprint: str,
    *,
    status: str = "firing",
    alertname: str = "HighErrorRate",
    service: str = "checkout",
    severity: str = "critical",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    expr: str = 'rate(http_requests_total{status="500"}[5m]) > 1',
) -> dict[str, Any]:
    starts = starts_at or datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    ends = ends_at or (starts + timedelta(minutes=5) if status == "resolved" else None)
    return {
        "status": status,
        "labels": {
            "alertname": alertname,
            "service": service,
            "severity": severity,
            "instance": f"{service}-{fingerprint}:8080",
        },
        "annotations": {
            "summary": f"{service} is failing requests",
            "runbook_url": "https://runbooks/x",
        },
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": ends.isoformat().replace("+00:00", "Z") if ends else ZERO,
        "generatorURL": "http://prometheus.internal:9090/graph?g0.expr=" + expr + "&g0.tab=1",
        "fingerprint": fingerprint,
    }


def group(
    group_key: str,
    alerts: list[dict[str, Any]],
    *,
    status: str | None = None,
    truncated: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    common = dict(alerts[0]["labels"]) if alerts else {}
    common.pop("instance", None)
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": truncated,
        "status": status,
        "receiver": "firebreak",
        "groupLabels": {"alertname": common.get("alertname", "")},
        "commonLabels": common,
        "commonAnnotations": dict(alerts[0]["annotations"]) if alerts else {},
        "externalURL": "http://alertmanager.internal:9093",
        "alerts": alerts,
        **extra,
    }
