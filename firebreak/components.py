"""The composition root's wiring: every component built with what it needs, started in order.

Slack first (so a new incident's card goes out before anything else happens), then the
investigations, then the scheduler; each stops in reverse, after the store writer has
committed everything. Everything is always built: a missing token or an unreachable store
fails here, at start, never later by a part quietly missing. `Parts` is what a caller may
bring instead of a configured component (tests, the CLI's quiet notifier, the demo's console).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from firebreak.access.responders import Access
from firebreak.agents.context import Deps, Settings
from firebreak.agents.graph import build_graph
from firebreak.agents.postmortem import PostmortemService
from firebreak.agents.runner import InvestigationService, open_checkpointer
from firebreak.agents.tool_results import ToolMetrics
from firebreak.bot.slack_app import (
    PageLinks,
    SlackOptions,
    SlackTokens,
    SocketMode,
    build_bolt_app,
    build_notifier,
    follow_incidents,
    serves_http,
)
from firebreak.bot.slack_groups import SlackGroups
from firebreak.bot.slack_handlers import Handlers
from firebreak.bot.slack_http import BoltHttpHandler
from firebreak.bot.slack_outbox import OutboxNotifier
from firebreak.bot.slack_transport import SlackTransport
from firebreak.bot.web.charts import ChartDrawer
from firebreak.config import Config, Secrets
from firebreak.escalation.flows import EscalationService
from firebreak.escalation.handoffs import HandoffGreetings
from firebreak.incidents.events import EventBus, IncidentEvent
from firebreak.incidents.feedback import FeedbackOps
from firebreak.incidents.flows import AlertIntake, IncidentOps
from firebreak.incidents.ports import Escalations, Investigations, Notifier
from firebreak.incidents.silences import SilenceEnds, SilenceOps
from firebreak.oncall.schedules import LookupEmail, OnCall
from firebreak.oncall.slack_lookup import slack_email_lookup
from firebreak.remediation.flows import RemediationService
from firebreak.runtime import Readiness, Runtime
from firebreak.scheduler.core import JobScheduler
from firebreak.store.breakers import BreakerOverrides
from firebreak.store.db import create_engine, create_sync_engine
from firebreak.store.migrate import upgrade
from firebreak.store.retention import purge_resolved_async
from firebreak.store.writer import Writer
from firebreak.tools.alertmanager import AlertmanagerClient
from firebreak.tools.breaker import BreakerBoard
from firebreak.tools.llm import LLMGateway
from firebreak.tools.metrics import Metrics
from firebreak.tools.redact import Redactor
from firebreak.tools.sources import breaker_configs

log = structlog.get_logger(__name__)

BREAKER_SYNC_S = 5.0  # how soon a breaker forced by an operator on another replica is honoured


@dataclass(frozen=True)
class Parts:
    slack: SlackOptions = field(default_factory=SlackOptions)
    notifier: Notifier | None = None  # instead of Slack: a test's recorder, the CLI's quiet one
    redactor: Redactor | None = None  # the one `serve` already scrubs its logs with
    # Instead of the investigation or escalation component: what answers its port (the Slack
    # tests' doubles, which let them hold an investigation open for as long as they need).
    investigations: Investigations | None = None
    escalations: Escalations | None = None
    # False: a new incident is not investigated on its own (`firebreak eval` replays it with
    # evidence of its own instead).
    investigate_opened: bool = True


class QuietNotifier:
    """A notifier that says nothing (`firebreak investigate` prints the analysis instead)."""

    def card_changed(self, incident_id: int, *, routine: bool = False) -> None:
        return None

    def tell(self, incident_id: int, notice: object) -> None:
        return None

    def tell_user(self, user_id: str, notice: object) -> None:
        return None


@asynccontextmanager
async def assembled(config: Config, secrets: Secrets, parts: Parts) -> AsyncIterator[Runtime]:
    """The store migrated, every component built and started; all stopped on exit in reverse
    order. Used by the ASGI lifespan, `firebreak investigate` and the demo."""
    url = config.store.url
    await asyncio.to_thread(upgrade, url)
    async with AsyncExitStack() as stack:
        engine = create_engine(url)
        stack.push_async_callback(engine.dispose)
        writer = Writer(create_sync_engine(url))
        await writer.start()
        stack.push_async_callback(_logged_stop, "store writer", writer.stop)
        metrics = Metrics()
        bus = EventBus()
        redactor = parts.redactor or Redactor.from_config(config.investigation, secrets.values())
        tokens = SlackTokens(
            secrets.slack_bot_token, secrets.slack_signing_secret, secrets.slack_app_token
        )
        intake = AlertIntake(  # first: background work yields to it during a storm
            writer=writer,
            bus=bus,
            config=config.ingest,
            opened=metrics.incidents_opened,
            resolved=metrics.incidents_resolved,
            correlation=config.correlation,
            time_to_resolve=metrics.time_to_resolve,
            redactor=redactor,
        )
        outbox = None
        if parts.notifier is None:
            charts = ChartDrawer()
            stack.callback(charts.close)
            outbox = build_notifier(
                config.slack,
                tokens,
                engine,
                writer,
                parts.slack,
                routing=config.routing,
                silence_durations=(
                    config.alertmanager.silence_durations if config.alertmanager else []
                ),
                pages=PageLinks(str(config.server.public_url), secrets),
                api_errors=metrics.slack_api_errors,
                charts=charts,
                ingest_busy=lambda: intake.busy,
                redactor=redactor,
            )
        notifier: Notifier = parts.notifier or outbox  # type: ignore[assignment]

        oncall = OnCall(
            config.schedules, registry=metrics.registry, lookup_email=email_lookup(outbox)
        )
        stack.push_async_callback(oncall.aclose)
        await oncall.refresh(force=True)  # calendars read before the first page is resolved
        if oncall.refresh_interval_s is not None:
            refreshing = asyncio.create_task(
                _refresh_forever(oncall, oncall.refresh_interval_s), name="schedules"
            )
            stack.push_async_callback(_cancelled, refreshing)
        silences = SilenceOps(
            engine=engine,
            writer=writer,
            bus=bus,
            alertmanager=(
                AlertmanagerClient.from_config(config.alertmanager, secrets.alertmanager_token)
                if config.alertmanager
                else None
            ),
            public_url=str(config.server.public_url),
        )
        stack.push_async_callback(silences.aclose)

        scheduler = JobScheduler(url, sweep_interval_s=config.escalation.sweep_interval_s)
        if config.store.retention_days is not None:
            schedule_retention(scheduler, writer, config.store.retention_days)
        escalations = EscalationService(
            engine=engine,
            writer=writer,
            bus=bus,
            notifier=notifier,
            scheduler=scheduler,
            config=config.escalation,
            resolve_targets=oncall.resolve_targets,
        )
        handoffs = HandoffGreetings(engine=engine, writer=writer, notifier=notifier, oncall=oncall)
        scheduler.register(handoffs.job_kind())
        scheduler.register(SilenceEnds(writer=writer, bus=bus).job_kind())
        remediations = RemediationService(
            engine=engine,
            writer=writer,
            notifier=notifier,
            scheduler=scheduler,
            config=config.remediation,
            metrics_sources=config.sources.metrics,
            redactor=redactor,
        )
        for kind in remediations.job_kinds():
            scheduler.register(kind)
        if parts.escalations is None:
            for kind in escalations.job_kinds():
                scheduler.register(kind)
            scheduler.register_catch_up(escalations.catch_up())

        breakers = breaker_board(config, metrics, BreakerOverrides(engine, writer))
        await breakers.sync()  # a breaker an operator forced open stays open across restarts
        syncing = asyncio.create_task(breakers.sync_forever(BREAKER_SYNC_S), name="breakers")
        stack.push_async_callback(_cancelled, syncing)
        gateway = await stack.enter_async_context(
            LLMGateway.from_config(
                config.llm,
                secrets.openai_api_key,
                registry=metrics.registry,
                breaker=breakers.get(llm_dependency(config)),
            )
        )
        http = await stack.enter_async_context(httpx.AsyncClient(follow_redirects=False))
        checkpointer = await stack.enter_async_context(
            open_checkpointer(url, config.investigation.checkpoint_path)
        )
        deps = Deps(
            engine=engine,
            writer=writer,
            bus=bus,
            notifier=notifier,
            remediations=remediations,
            gateway=gateway,
            redactor=redactor,
            http=http,
            breakers=breakers,
            tool_metrics=ToolMetrics(metrics.registry),
            prompt_tokens=metrics.llm_prompt_tokens,
            finished=metrics.investigations,
            settings=Settings(
                sources=config.sources,
                investigation=config.investigation,
                actions=config.remediation.actions,
                max_json_retries=config.llm.max_json_retries,
                approve_later_s=config.remediation.approve_later_s,
            ),
        )
        service = InvestigationService(
            build_graph(checkpointer),
            deps,
            remediations,
            durations=metrics.investigation_seconds,
            ingest_busy=lambda: intake.busy,
        )
        investigations = parts.investigations or service
        postmortems = PostmortemService(
            engine=engine,
            writer=writer,
            gateway=gateway,
            redactor=redactor,
            max_json_retries=config.llm.max_json_retries,
        )
        ops = IncidentOps(
            engine=engine,
            writer=writer,
            bus=bus,
            escalations=parts.escalations or escalations,
            investigations=investigations,
            time_to_acknowledge=metrics.time_to_acknowledge,
            time_to_resolve=metrics.time_to_resolve,
            redactor=redactor,
            notifier=notifier,
        )
        feedback = FeedbackOps(engine=engine, writer=writer, bus=bus, notifier=notifier)
        groups = SlackGroups(slack_client(outbox))
        access = Access(
            config.access,
            engine=engine,
            groups=groups,
            policies=config.escalation.policies,
            resolve_targets=oncall.resolve_targets,
        )

        readiness: dict[str, Readiness] = {"scheduler": scheduler.readiness}
        slack_handler = None
        socket = None
        if outbox is not None:
            readiness["slack"] = outbox.readiness
            handlers = Handlers(
                ops=ops,
                investigations=investigations,
                engine=engine,
                writer=writer,
                notifier=outbox,
                config=config.slack,
                approvers=config.remediation.approvers,
                approve_later_s=config.remediation.approve_later_s,
                oncall=oncall,
                silences=silences,
                postmortems=postmortems,
                feedback=feedback,
                access=access,
                groups=groups,
            )
            if config.slack.mode == "socket":
                socket = SocketMode(
                    build_bolt_app(config.slack, tokens, handlers, parts.slack), tokens
                )
                readiness["slack_socket"] = socket.readiness
            elif serves_http(config.slack, tokens):
                bolt = build_bolt_app(config.slack, tokens, handlers, parts.slack)
                slack_handler = BoltHttpHandler(bolt, config.server.max_body_bytes)

        runtime = Runtime(
            config=config,
            secrets=secrets,
            engine=engine,
            writer=writer,
            metrics=metrics,
            bus=bus,
            redactor=redactor,
            notifier=notifier,
            outbox=outbox,
            intake=intake,
            incidents=ops,
            feedback=feedback,
            investigations=investigations,
            postmortems=postmortems,
            escalations=escalations,
            remediations=remediations,
            scheduler=scheduler,
            breakers=breakers,
            oncall=oncall,
            silences=silences,
            access=access,
            slack_handler=slack_handler,
            readiness_checks=readiness,
        )

        if outbox is not None:
            await outbox.start()
            stack.push_async_callback(_logged_stop, "slack", outbox.stop)
            bus.subscribe(follow_incidents(outbox))
            await outbox.recover()
            log.info("slack started", mode=config.slack.mode, channel=config.slack.channel)
        if socket is not None:
            await socket.start(stack)

        if parts.investigations is None:
            await service.start()
            stack.push_async_callback(_logged_stop, "investigations", service.close)
        if parts.investigate_opened:
            bus.subscribe(investigations.on_event)

        await scheduler.start()
        stack.push_async_callback(_logged_stop, "scheduler", scheduler.stop)
        if parts.escalations is None:
            bus.subscribe(_unless_stopped(scheduler, escalations))
        yield runtime


RETENTION_INTERVAL_S = 3600.0
RETENTION_FIRST_AFTER_S = 60.0  # the first purge shortly after start, not an hour later


def schedule_retention(
    scheduler: JobScheduler,
    writer: Writer,
    retention_days: int,
    *,
    first_after_s: float = RETENTION_FIRST_AFTER_S,
) -> None:
    """`store.retention_days`: the elected scheduler purges resolved incidents older than that,
    hourly (store/retention.py; each batch through the writer, logged)."""

    async def purge() -> None:
        older_than = datetime.now(UTC) - timedelta(days=retention_days)
        await purge_resolved_async(writer, older_than)

    first = datetime.now(UTC) + timedelta(seconds=first_after_s)
    scheduler.every("retention", RETENTION_INTERVAL_S, purge, first_at=first)


def llm_dependency(config: Config) -> str:
    return f"llm:{config.llm.provider}"


def breaker_board(config: Config, metrics: Metrics, overrides: BreakerOverrides) -> BreakerBoard:
    """One circuit breaker per dependency: the LLM and every log, metric and cluster source
    that is reached over the network (a file is not a dependency that can be down)."""
    board = BreakerBoard(registry=metrics.registry, store=overrides)
    board.add(llm_dependency(config), config.llm.circuit_breaker)
    for name, settings in breaker_configs(config.sources).items():
        board.add(name, settings)
    return board


def slack_client(outbox: OutboxNotifier | None) -> Any | None:
    """The Slack transport's own client (token, base URL, retry handlers); None in console
    mode or when a caller brought its own notifier."""
    transport = outbox.transport if outbox is not None else None
    return transport.client if isinstance(transport, SlackTransport) else None


def email_lookup(outbox: OutboxNotifier | None) -> LookupEmail | None:
    """Slack's `users.lookupByEmail`, for iCal schedules naming people by e-mail."""
    client = slack_client(outbox)
    return slack_email_lookup(client) if client is not None else None


async def _refresh_forever(oncall: OnCall, interval_s: float) -> None:
    """Re-read the iCal schedules as their `ical_refresh_s` falls due (a failed read keeps the
    last good copy; `refresh` logs and counts it)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await oncall.refresh()
        except Exception:
            log.exception("schedule refresh failed")


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _unless_stopped(
    scheduler: JobScheduler, escalations: EscalationService
) -> Callable[[IncidentEvent], None]:
    def on_event(event: IncidentEvent) -> None:
        if not scheduler.stopped:
            escalations.on_event(event)

    return on_event


async def _logged_stop(name: str, stop: Callable[[], Awaitable[object]]) -> None:
    began = time.perf_counter()
    await stop()
    log.info("stopped", component=name, seconds=round(time.perf_counter() - began, 3))
