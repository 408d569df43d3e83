"""The `escalation` section: policies (ladders of who to page), reminders, the sweep."""

from __future__ import annotations

from pydantic import Field, field_validator

from firebreak.oncall.config import is_schedule_target
from firebreak.tools.config import Section


class EscalationLevel(Section):
    notify: list[str] = Field(min_length=1)
    timeout_s: float = Field(300, gt=0)

    @field_validator("notify")
    @classmethod
    def _slack_ids(cls, targets: list[str]) -> list[str]:
        for target in targets:
            if target[:1] not in {"U", "W", "S", "C", "G"} and not is_schedule_target(target):
                raise ValueError(
                    f"{target!r} is not a Slack user (U…), group (S…), channel (C…) "
                    "or schedule:NAME"
                )
        return targets


class EscalationPolicy(Section):
    name: str
    match: dict[str, str] = {}
    levels: list[EscalationLevel] = Field(min_length=1)
    repeat: int = Field(0, ge=0, le=100)


class EscalationConfig(Section):
    policies: list[EscalationPolicy] = []
    reminder_interval_s: float = Field(3600, gt=0)
    # How often the elected scheduler re-reads the ladders, reminders and remediations other
    # replicas wrote (its own changes are scheduled at once).
    sweep_interval_s: float = Field(5, gt=0)

    def paging_gap(self) -> str | None:
        """Why an alert could page nobody, or None when a policy matches every alert (its
        `match` is empty). Said by `firebreak check` and at `serve` start: a warning, not an
        error, since a setup may mean to page only some alerts."""
        if not self.policies:
            return (
                "escalation.policies is empty: no alert pages anyone (`firebreak init` writes "
                "a default policy that pages the incidents channel)"
            )
        if not any(not policy.match for policy in self.policies):
            names = ", ".join(policy.name for policy in self.policies)
            return (
                f"no escalation policy matches every alert (none has `match: {{}}`): an alert "
                f"that matches none of {names} pages nobody"
            )
        return None
