"""People tell Firebreak whether its root-cause analysis was right: the one flow behind the
RCA reply's Correct / Wrong and `POST /api/v1/incidents/{id}/feedback`.

A verdict is stored with its `FEEDBACK` event in one writer transaction (store/feedback.py),
which also decides whether it may be given: only the incident's latest analysis is judged, so
a click on an older RCA reply (re-investigated since) changes nothing. Once stored, the RCA
reply of the judged run is re-rendered in place (it shows the verdict) and the card follows
through the bus. Later investigations read the verdict as history (store/memory.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.incidents.events import Change, EventBus, IncidentEvent
from firebreak.incidents.notices import RcaReady
from firebreak.incidents.ports import Notifier
from firebreak.store import incidents
from firebreak.store.feedback import FeedbackResult, Recorded, latest_analysis, record_feedback
from firebreak.store.schemas import Verdict
from firebreak.store.writer import Writer

__all__ = ["FeedbackOps", "FeedbackResult", "Recorded"]

log = structlog.get_logger(__name__)

MAX_CAUSE = 2000  # the longest actual cause kept, as long as a root cause may be


@dataclass(frozen=True)
class FeedbackOps:
    """Record verdicts; say whether one may be given (before Slack opens a form for it)."""

    engine: AsyncEngine
    writer: Writer
    bus: EventBus
    notifier: Notifier

    async def give(
        self,
        incident_id: int,
        verdict: Verdict,
        by: str,
        actual_cause: str | None = None,
        *,
        run_id: str | None = None,
    ) -> Recorded:
        """Judge the incident's latest analysis (only if it is run `run_id`'s, when given)."""
        cause = (actual_cause or "").strip()[:MAX_CAUSE] or None
        if verdict is Verdict.WRONG and cause is None:
            raise ValueError("a wrong verdict needs the actual cause")
        done = await self.writer.run(
            partial(
                record_feedback,
                incident_id=incident_id,
                verdict=verdict,
                by=by,
                actual_cause=cause,
                run_id=run_id,
            )
        )
        log.info(
            "analysis feedback",
            incident_id=incident_id,
            verdict=verdict.value,
            actor=by,
            result=done.result.value,
        )
        if done.result is FeedbackResult.RECORDED:
            self._announce(incident_id, done, by)
        return done

    async def refusal(self, incident_id: int, run_id: str | None) -> FeedbackResult | None:
        """Why a verdict on run `run_id` would be refused now (None: it would be taken)."""
        async with self.engine.connect() as conn:
            if not await incidents.exists(conn, incident_id):
                return FeedbackResult.MISSING
            analysis = await latest_analysis(conn, incident_id)
        if analysis is None:
            return FeedbackResult.NO_ANALYSIS
        if run_id is not None and run_id != analysis.run_id:
            return FeedbackResult.SUPERSEDED
        return None

    def _announce(self, incident_id: int, done: Recorded, by: str) -> None:
        """The judged run's RCA reply shows the verdict; the card too."""
        if done.analysis is not None and done.analysis.run_id is not None:
            self.notifier.tell(incident_id, RcaReady(run_id=done.analysis.run_id, refresh=True))
        self.bus.publish(IncidentEvent(incident_id, Change.UPDATED, by))
