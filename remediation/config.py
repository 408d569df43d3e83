"""The `remediation` section: the allowlist, who may approve, the "later" delay."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from firebreak.tools.config import RemediationAction


class RemediationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: list[RemediationAction] = []
    approvers: list[str] = []  # Slack user/group ids; empty means anyone in the channel
    approve_later_s: float = Field(600, gt=0)  # the "Approve, run in N min" button's delay
