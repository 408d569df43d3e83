"""The Alertmanager webhook payload, version 4, as received on `/webhooks/alertmanager`.

Unknown fields are ignored (newer Alertmanagers add some, e.g. `notification_reason`);
known fields are type-checked so a malformed payload is refused with the field named.

Grafana-managed alerts arrive in the same shape: Grafana's webhook contact point sends
Alertmanager's version-4 fields with `version` "1" and a few of its own (`orgId`, `state`,
`title`, `message`, and per alert `values`, `valueString`, `dashboardURL`, `panelURL`,
`silenceURL`). Every field Firebreak reads means the same in both, so both are accepted into
this one model; Grafana's own fields are ignored like any unknown field. Any other version is
refused with both accepted formats named.

Bad input is decided here, field by field, for Alertmanager's retry logic (a 4xx is dropped,
so a refused notification pages nobody; a 5xx is retried forever):
- a NUL character in text Alertmanager copies from scraped data (label and annotation values,
  the group key built from them, URLs, the receiver) is replaced by U+FFFD and the field is
  named in `repaired`: PostgreSQL cannot store NUL, and the alert must still page;
- a NUL in a label or annotation name or in a fingerprint is refused: Alertmanager never sends
  one (names follow Prometheus' grammar, fingerprints are hex), and a replaced name or
  fingerprint could merge two distinct ones;
- a time outside 1970…2200 is refused: no real alert has one, and no substitute would be both
  true and stable across redeliveries (startsAt is part of an alert's identity and its
  investigation window). Alertmanager's zero time (year 1) as `endsAt` means "not ended".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

ZERO_TIME_YEAR = 1  # Alertmanager sends 0001-01-01T00:00:00Z as endsAt of firing alerts
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # exclusive
NUL = "\x00"
REPLACEMENT = "\ufffd"
# Alert sources name the service differently; the first of these labels that is set names it.
SERVICE_LABELS = ("service", "app", "job", "deployment", "container", "namespace")
ALERTMANAGER_VERSION = "4"
GRAFANA_VERSION = "1"  # Grafana Alerting's webhook contact point


def service_of(labels: dict[str, str], default: str = "unknown") -> str:
    """The service an alert is about: the one precedence the incident and the RCA share."""
    return next((labels[key] for key in SERVICE_LABELS if labels.get(key)), default)


def no_nul(value: str) -> str:
    """Refuses NUL where a replacement would change what the text identifies."""
    if NUL in value:
        raise PydanticCustomError("nul_character", "NUL character not allowed")
    return value


def known_version(value: object) -> str:
    """Alertmanager's "4" or Grafana's "1"; anything else is refused with both named and the
    README section that says how to point each at Firebreak."""
    if value not in (ALERTMANAGER_VERSION, GRAFANA_VERSION):
        raise PydanticCustomError(
            "unsupported_version",
            "version {version!r} is not supported: Firebreak reads Alertmanager's webhook "
            "(version 4) and Grafana Alerting's webhook contact point (version 1); see the "
            "README, 'Grafana alerting'",
            {"version": value},
        )
    return str(value)


def in_range(value: datetime) -> datetime:
    """The time, made UTC-aware; refused outside 1970…2200, where the investigation's window
    arithmetic overflows and the stores' time columns disagree."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not EARLIEST.year <= aware.year <= LATEST.year or not EARLIEST <= aware < LATEST:
        shown = aware.isoformat().replace("+00:00", "Z")
        raise PydanticCustomError(
            "time_out_of_range", "{when} is out of range (1970…2200)", {"when": shown}
        )
    return aware


Name = Annotated[str, AfterValidator(no_nul)]
Labels = dict[Name, str]


def _replace_nul(model: BaseModel, fields: tuple[str, ...]) -> list[str]:
    """Replaces NUL in the named text and dict-value fields; the fields changed, as the JSON
    names them (`labels.team`)."""
    repaired: list[str] = []
    for name in fields:
        value: Any = getattr(model, name)
        alias = type(model).model_fields[name].alias or name
        if isinstance(value, str) and NUL in value:
            setattr(model, name, value.replace(NUL, REPLACEMENT))
            repaired.append(alias)
        elif isinstance(value, dict) and any(NUL in text for text in value.values()):
            repaired += [f"{alias}.{key}" for key, text in value.items() if NUL in text]
            setattr(model, name, {k: v.replace(NUL, REPLACEMENT) for k, v in value.items()})
    return repaired


class AlertPayload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: Labels = {}
    annotations: Labels = {}
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: Annotated[str, AfterValidator(no_nul)] = Field(min_length=1, max_length=128)
    _repaired: list[str] = PrivateAttr(default_factory=list)

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
    def _start(cls, value: datetime) -> datetime:
        return in_range(value)

    @field_validator("ends_at")
    @classmethod
    def _zero_is_none(cls, value: datetime | None) -> datetime | None:
        if value is None or value.year <= ZERO_TIME_YEAR:
            return None
        return in_range(value)

    @model_validator(mode="after")
    def _repair(self) -> AlertPayload:
        self._repaired = _replace_nul(self, ("labels", "annotations", "generator_url"))
        return self


class AlertmanagerPayload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Annotated[str, BeforeValidator(known_version)]
    group_key: str = Field(alias="groupKey", min_length=1, max_length=4096)
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: Labels = Field({}, alias="groupLabels")
    common_labels: Labels = Field({}, alias="commonLabels")
    common_annotations: Labels = Field({}, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    alerts: list[AlertPayload] = []
    _repaired: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _repair(self) -> AlertmanagerPayload:
        own = ("group_key", "receiver", "group_labels", "common_labels", "common_annotations")
        self._repaired = _replace_nul(self, (*own, "external_url")) + [
            f"alerts.{index}.{field}"
            for index, alert in enumerate(self.alerts)
            for field in alert._repaired
        ]
        return self

    @property
    def repaired(self) -> list[str]:
        """The fields whose NUL characters were replaced by U+FFFD, as the JSON names them
        (`alerts.0.labels.team`); empty for a clean payload."""
        return list(self._repaired)
