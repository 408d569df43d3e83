"""Silences in Slack: the card's Silence / Unsilence buttons, its "Silenced until" line, and
what whoever silenced or unsilenced an incident is answered, worded from the outcome of
`incidents.silences.SilenceOps`. Failures are answered, never recorded: the person sees why
(Alertmanager down, or what it said) and can try again."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import ActionsBlock, Block

from firebreak.bot.messages.blocks import button, escape, slack_date, who
from firebreak.bot.messages.replies import Reply
from firebreak.incidents.silences import SilenceOutcome, SilenceResult
from firebreak.store.silences import ActiveSilence

ACTION_SILENCE = "incident_silence"  # + "_N": one button per configured duration
ACTION_UNSILENCE = "incident_unsilence"
SILENCE_ACTIONS_BLOCK = "incident_silence"


def silenced_line(silence: ActiveSilence) -> str:
    return f":no_bell: Silenced until {slack_date(silence.ends_at)} by {who(silence.created_by)}"


def silence_value(incident_id: int, duration: str) -> str:
    return f"{incident_id}:{duration}"


def parse_silence_value(value: str) -> tuple[int, str]:
    """Inverse of ``silence_value``; ValueError for anything else."""
    incident_id, sep, duration = value.partition(":")
    if not sep or not duration:
        raise ValueError(f"not a silence value: {value!r}")
    return int(incident_id), duration


def silence_controls(
    incident_id: int, is_open: bool, silence: ActiveSilence | None, durations: Sequence[str]
) -> Block | None:
    """Unsilence while silenced; else one Silence button per duration on an open incident.
    No durations: Alertmanager is not configured, so no controls."""
    if not durations:
        return None
    if silence is not None:
        buttons = [button(":bell: Unsilence", ACTION_UNSILENCE, str(incident_id))]
    elif is_open:
        buttons = [
            button(
                f":no_bell: Silence {duration}",
                f"{ACTION_SILENCE}_{index}",
                silence_value(incident_id, duration),
            )
            for index, duration in enumerate(durations)
        ]
    else:
        return None
    return ActionsBlock(elements=buttons, block_id=SILENCE_ACTIONS_BLOCK)


def silence_reply(outcome: SilenceOutcome, command: str = "/incident") -> Reply:
    i = outcome.incident_id
    result = outcome.result
    if result is SilenceResult.SILENCED:
        assert outcome.until is not None
        return Reply(
            f":no_bell: Silenced the alerts of incident #{i} until {slack_date(outcome.until)} "
            f"(Alertmanager silence `{escape(outcome.silence_id or '')}`)."
        )
    if result is SilenceResult.UNSILENCED:
        return Reply(f":bell: Lifted the silence on incident #{i}; its alerts notify again.")
    if result is SilenceResult.FAILED:
        return Reply(
            f":x: Could not change the silence of incident #{i}: "
            f"{escape(outcome.error or 'Alertmanager failed')}. Nothing was recorded.",
            changed=False,
        )
    text = {
        SilenceResult.MISSING: f"There is no incident #{i}.",
        SilenceResult.NOT_SILENCED: f"Incident #{i} is not silenced.",
        SilenceResult.NOT_CONFIGURED: (
            "Silences need Alertmanager: set `alertmanager.url` in the configuration."
        ),
        SilenceResult.BAD_DURATION: (
            f":warning: {escape(outcome.error or 'bad duration')}. "
            f"Usage: `{escape(command)} silence ID DURATION`, e.g. 4h."
        ),
        SilenceResult.NOTHING_TO_MATCH: (
            f"Incident #{i} has no alert labels to match (declared by hand?): nothing to silence."
        ),
    }[result]
    return Reply(text, changed=False, missing=result is SilenceResult.MISSING)
