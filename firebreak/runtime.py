"""The app object: every component, built once and wired together.

`Runtime` is the one piece of process state beyond constants. It is complete when it
exists (firebreak/components.py builds it whole; no part is filled in later) and frozen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from firebreak.access.responders import Access
from firebreak.bot.slack_outbox import OutboxNotifier
from firebreak.config import Config, Secrets
from firebreak.escalation.flows import EscalationService
from firebreak.incidents.events import EventBus
from firebreak.incidents.feedback import FeedbackOps
from firebreak.incidents.flows import AlertIntake, IncidentOps
from firebreak.incidents.ingest import IngestOutcome
from firebreak.incidents.ports import Investigations, Notifier, Postmortems
from firebreak.incidents.silences import SilenceOps
from firebreak.oncall.schedules import OnCall
from firebreak.remediation.flows import RemediationService
from firebreak.scheduler.core import JobScheduler
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.store.writer import Writer
from firebreak.tools.breaker import BreakerBoard
from firebreak.tools.metrics import Metrics
from firebreak.tools.redact import Redactor

Readiness = Callable[[], str]  # "ok" or the reason it is not ready
SlackHandler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Runtime:
    config: Config
    secrets: Secrets
    engine: AsyncEngine
    writer: Writer  # group commit for every write (store/writer.py)
    metrics: Metrics
    bus: EventBus
    redactor: Redactor
    notifier: Notifier
    outbox: OutboxNotifier | None  # the Slack outbox (None when a test brings its notifier)
    intake: AlertIntake
    incidents: IncidentOps
    feedback: FeedbackOps  # verdicts on analyses (the RCA reply's Correct / Wrong, the API)
    investigations: Investigations
    postmortems: Postmortems  # drafts on demand (bot/memory_api.py, /incident postmortem)
    escalations: EscalationService
    remediations: RemediationService
    scheduler: JobScheduler
    breakers: BreakerBoard  # every dependency's circuit breaker (tools/breaker.py)
    oncall: OnCall  # the schedules: who is on call (oncall/schedules.py)
    silences: SilenceOps  # Alertmanager silences of incidents (incidents/silences.py)
    access: Access  # who may act on an incident (`access.responders`; access/responders.py)
    # POST /slack/events, when Slack runs in HTTP mode (or console mode with a signing secret)
    slack_handler: SlackHandler | None
    readiness_checks: dict[str, Readiness]

    def readiness(self) -> dict[str, str]:
        return {name: check() for name, check in self.readiness_checks.items()}

    async def ingest(self, payload: AlertmanagerPayload) -> IngestOutcome:
        return await self.intake.ingest(payload)
