"""The alert's own text, scrubbed once on its way in.

Where "in" is differs by what the text is for:
- Annotations (summary, description, runbook links…) and the generator URL are text for people
  and prompts only: they are cut and scrubbed before the notification is stored, so no
  reader (card, DM, page, postmortem, API, prompt) ever gets them in clear.
- Label values are the alert's identity: Alertmanager grouped by them (the group key spells
  them), routing rules and correlation match them, and a silence must match them exactly. They
  are stored as they came; the text built from them for reading (the title, the group's name
  on the timeline) is scrubbed here, and the labels themselves where they are shown
  (`IncidentOut.shown`, `safe_alert` for prompts).
"""

from __future__ import annotations

from collections.abc import Mapping

from firebreak.store.payloads import AlertmanagerPayload, AlertPayload
from firebreak.tools.redact import REDACTED, Redactor, sensitive_key
from firebreak.tools.text import cut

__all__ = ["MAX_ANNOTATION_CHARS", "MAX_SHOWN_CHARS", "scrub_payload", "shown_text"]

MAX_ANNOTATION_CHARS = 4000  # a description longer than this is cut (marked) before scanning
MAX_URL_CHARS = 2000
MAX_SHOWN_CHARS = 500  # a title or a group's name, as read
_INLINE_CHARS = 8000  # less text than this is scrubbed on the event loop; more in a thread


def shown_text(text: str, redactor: Redactor) -> str:
    """A title or a group's name as people read it: cut, then scrubbed."""
    return redactor.redact(cut(text, MAX_SHOWN_CHARS))


def needs_thread(payload: AlertmanagerPayload) -> bool:
    """Whether scrubbing the payload is enough CPU work to take off the event loop."""
    size = sum(len(v) for v in payload.common_annotations.values())
    for alert in payload.alerts:
        size += len(alert.generator_url) + sum(len(v) for v in alert.annotations.values())
        if size > _INLINE_CHARS:
            return True
    return size > _INLINE_CHARS


def scrub_payload(payload: AlertmanagerPayload, redactor: Redactor) -> AlertmanagerPayload:
    """The notification with its annotations and generator URLs cut and scrubbed; labels,
    the group key and everything else as they came."""
    return payload.model_copy(
        update={
            "common_annotations": _annotations(payload.common_annotations, redactor),
            "alerts": [_alert(alert, redactor) for alert in payload.alerts],
        }
    )


def _alert(alert: AlertPayload, redactor: Redactor) -> AlertPayload:
    return alert.model_copy(
        update={
            "annotations": _annotations(alert.annotations, redactor),
            "generator_url": redactor.redact(cut(alert.generator_url, MAX_URL_CHARS)),
        }
    )


def _annotations(annotations: Mapping[str, str], redactor: Redactor) -> dict[str, str]:
    """Each value cut and scrubbed; one under a name that names a secret, dropped whole."""
    return {name: _annotation(name, value, redactor) for name, value in annotations.items()}


def _annotation(name: str, value: str, redactor: Redactor) -> str:
    if value and sensitive_key(name):
        return REDACTED
    return redactor.redact(cut(value, MAX_ANNOTATION_CHARS))
