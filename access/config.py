"""The `access` section: who may act on an incident (its responders).

Absent, everyone in the workspace may act on every incident, as before the section existed.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from firebreak.tools.config import Section

ONCALL = "oncall"  # whoever is on call for the incident's escalation policy, or was paged
OPEN = (
    "access is not configured: every workspace member may act on every incident "
    "(set access.responders to limit it)"
)


class AccessConfig(Section):
    responders: list[str] = Field(min_length=1)

    @field_validator("responders")
    @classmethod
    def _users_groups_or_oncall(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            if entry != ONCALL and entry[:1] not in {"U", "W", "S"}:
                raise ValueError(
                    f"{entry!r} is not a Slack user (U…), user group (S…) or the word {ONCALL}"
                )
        return entries
