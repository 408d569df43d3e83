"""The `ingest` section of the configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IngestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reopen_window_s: int = Field(300, ge=0)  # a firing alert this soon after resolve reopens


class CorrelationConfig(BaseModel):
    """The `correlation` section: incidents opened within `window_s` of each other whose labels
    in `labels` are all set and equal are correlated. `merge: false` names them on each other's
    card; `merge: true` makes a correlated new group join the open incident instead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: int = Field(300, ge=0)
    labels: list[str] = Field(default_factory=lambda: ["cluster", "namespace"])
    merge: bool = False

    def key(self, labels: dict[str, str]) -> tuple[str, ...] | None:
        """The values that correlate, or None when one is missing (nothing to correlate by)."""
        values = tuple(labels.get(name, "") for name in self.labels)
        return values if self.labels and all(values) else None
