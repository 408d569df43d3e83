"""What Firebreak answers whoever silenced or unsilenced an incident, worded from the outcome
of `incidents.silences.SilenceOps` (the bot/replies.py pattern). Failures are answered, never
recorded: the person sees why (Alertmanager down, or what it said) and can try again."""

from __future__ import annotations

from firebreak.bot.cards import escape, slack_date
from firebreak.bot.replies import Reply
from firebreak.incidents.silences import SilenceOutcome, SilenceResult

__all__ = ["silence_reply"]


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
