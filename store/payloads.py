"""The Alertmanager webhook payload, version 4, as received on `/webhooks/alertmanager`.

Unknown fields are ignored (newer Alertmanagers add some, e.g. `notification_reason`);
known fields are type-checked so a malformed payload is refused with the field named.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from firebreak.store.text import json_without_nul

ZERO_TIME_YEAR = 1  # Alertmanager sends 0001-01-01T00:00:00Z as endsAt of firing alerts
# Alert sources name the service differently; the first of these labels that is set names it.
SERVICE_LABELS = ("service", "app", "job", "deployment", "container", "namespace")


def service_of(labels: dict[str, str], default: str = "unknown") -> str:
    """The service an alert is about: the one precedence the incident and the RCA share."""
    return next((labels[key] for key in SERVICE_LABELS if labels.get(key)), default)


class AlertPayload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=128)

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _timestamp_text(cls, value: object) -> object:
        """Alertmanager sends RFC 3339 text; pydantic would read a bare number as Unix time
        and store 1970 over a real start."""
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("must be an RFC 3339 timestamp string")
        return value

    @field_validator("starts_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @field_validator("ends_at")
    @classmethod
    def _zero_is_none(cls, value: datetime | None) -> datetime | None:
        if value is None or value.year <= ZERO_TIME_YEAR:
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class AlertmanagerPayload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1, max_length=4096)
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field({}, alias="groupLabels")
    common_labels: dict[str, str] = Field({}, alias="commonLabels")
    common_annotations: dict[str, str] = Field({}, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    alerts: list[AlertPayload] = []

    @classmethod
    def from_json(cls, body: bytes | str) -> AlertmanagerPayload:
        """The payload as the store keeps it: NUL becomes U+FFFD (store/text.py) before
        ingestion compares fingerprints and group keys with stored ones, so a redelivered
        notification matches what its first delivery stored. JSON can only carry NUL escaped,
        so a body without the escape (every one in practice) costs one byte search; a body
        with it is validated as sent first, so errors name the fields as usual."""
        raw = body.encode() if isinstance(body, str) else body
        payload = cls.model_validate_json(raw)
        if b"\\u0000" not in raw:
            return payload
        return cls.model_validate_json(json.dumps(json_without_nul(json.loads(raw))))
