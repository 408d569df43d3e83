"""The `ingest` section of the configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IngestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reopen_window_s: int = Field(300, ge=0)  # a firing alert this soon after resolve reopens
