"""The Slack surface: the outbox notifier, the Bolt app and what follows the incident bus.

Built by the composition root in two steps, because everything else speaks through the
notifier while the Bolt app speaks to everything else: `build_notifier` first, then
`build_bolt_app` with the incident actions. Per ``slack.mode``:

* ``http``: the Bolt ``AsyncApp`` is served at ``POST /slack/events`` (signature verified with
  ``SLACK_SIGNING_SECRET``); ``SLACK_BOT_TOKEN`` is handed to Bolt by an ``authorize``
  function, so Bolt never calls ``auth.test``.
* ``socket``: the same app over Socket Mode (``SLACK_APP_TOKEN``), connected in the background.
* ``console``: no network; messages are printed to the terminal. When ``SLACK_SIGNING_SECRET``
  is set, the Bolt app is served at ``POST /slack/events`` too, so signed Slack requests
  (``firebreak demo``'s button click, a local curl) run the real handlers.

Slack retries an Events API delivery it thinks failed (``X-Slack-Retry-Num``) with the same
``event_id``; a double-clicked button arrives twice with the same ``trigger_id``, and a
replayed slash command repeats its ``trigger_id``. A global middleware records each
delivery's key (`delivery_key`) in the store (``INSERT … ON CONFLICT DO NOTHING``) before any
listener runs, and acknowledges repeats without handling them: replicas behind one load
balancer share the table, so a retry that lands on another replica is still caught, and so is
one that arrives after a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from prometheus_client import Counter
from pydantic import SecretStr
from rich.console import Console
from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.bot.config import SlackConfig
from firebreak.bot.messages.incident import ACTION_OPEN_PAGE
from firebreak.bot.slack_handlers import Handlers, acting_user, register
from firebreak.bot.slack_outbox import OutboxNotifier, OutboxSettings
from firebreak.bot.slack_transport import ConsoleTransport, SlackTransport, make_client
from firebreak.bot.web.auth import Secrets as WebSecrets
from firebreak.bot.web.charts import ChartDrawer
from firebreak.incidents.events import IncidentEvent
from firebreak.oncall.config import RouteRule
from firebreak.store import dedup
from firebreak.store.writer import Writer
from firebreak.tools.redact import Redactor

log = structlog.get_logger(__name__)


CONSOLE_TOKEN = "xoxb-console-mode"


class SlackSetupError(RuntimeError):
    """Slack cannot start as configured (a missing token, names the variable)."""


@dataclass(frozen=True)
class SlackOptions:
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    max_inline_wait_s: float = 10.0  # a 429 asking for longer goes back to the outbox
    client_timeout_s: float = 10.0
    console: Console | None = None  # console mode output (default: stdout)


@dataclass(frozen=True)
class SlackTokens:
    bot: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app: SecretStr | None = None  # Socket Mode


def _secret(value: Any, variable: str, mode: str) -> str:
    if value is None or not value.get_secret_value():
        raise SlackSetupError(f"slack.mode is {mode} but {variable} is not set")
    return value.get_secret_value()


@dataclass(frozen=True)
class PageLinks:
    """Where the incident pages are (`server.public_url`) and what signs links to them."""

    public_url: str
    secrets: WebSecrets


def build_notifier(
    config: SlackConfig,
    tokens: SlackTokens,
    engine: AsyncEngine,
    writer: Writer,
    opts: SlackOptions,
    *,
    pages: PageLinks,
    api_errors: Counter,
    charts: ChartDrawer,
    ingest_busy: Callable[[], bool],
    routing: Sequence[RouteRule] = (),
    silence_durations: Sequence[str] = (),
    redactor: Redactor | None = None,
) -> OutboxNotifier:
    """The outbox notifier over Slack's Web API, or over the terminal in console mode. A
    missing token is refused here, at start (SlackSetupError names the variable).
    `api_errors` counts failed Slack calls by method and error; `charts` draws the thread's
    charts; `ingest_busy` says an alert storm is being taken in (deliveries then take turns);
    `routing` picks each card's channel; `silence_durations` (empty: no Alertmanager)
    the card's Silence buttons."""
    if config.mode == "console":
        transport: Any = ConsoleTransport(opts.console)
    else:
        token = _secret(tokens.bot, "SLACK_BOT_TOKEN", config.mode)
        transport = SlackTransport(
            make_client(
                token,
                config.api_base_url,
                timeout_s=opts.client_timeout_s,
                max_inline_wait_s=opts.max_inline_wait_s,
            ),
            api_errors,
        )
    return OutboxNotifier(
        engine,
        writer,
        transport,
        charts=charts,
        ingest_busy=ingest_busy,
        channel=config.channel,
        public_url=pages.public_url,
        secrets=pages.secrets,
        alertmanager_url=config.alertmanager_url,
        settings=opts.outbox,
        routing=routing,
        silence_durations=silence_durations,
        redactor=redactor,
    )


def follow_incidents(notifier: OutboxNotifier) -> Callable[[IncidentEvent], None]:
    """The bus subscriber that keeps cards current and says when an incident resolves."""

    def on_incident(event: IncidentEvent) -> None:
        if notifier.running:
            notifier.follow(event)

    return on_incident


def serves_http(config: SlackConfig, tokens: SlackTokens) -> bool:
    """Whether `POST /slack/events` is served (HTTP mode, or console mode with a secret)."""
    return config.mode == "http" or (config.mode == "console" and tokens.signing_secret is not None)


def build_bolt_app(
    config: SlackConfig, tokens: SlackTokens, handlers: Handlers, opts: SlackOptions
) -> AsyncApp:
    token = (
        CONSOLE_TOKEN  # console mode never calls the Web API with it
        if config.mode == "console"
        else _secret(tokens.bot, "SLACK_BOT_TOKEN", config.mode)
    )
    signing_secret = (
        _secret(tokens.signing_secret, "SLACK_SIGNING_SECRET", config.mode)
        if config.mode in ("http", "console")
        else (
            tokens.signing_secret.get_secret_value()
            if tokens.signing_secret
            else "unused-in-socket-mode"
        )
    )

    async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

    app = AsyncApp(
        name="firebreak-slack",  # Bolt names a logger after the app: not our package's
        signing_secret=signing_secret,
        authorize=authorize,
        client=make_client(
            None,
            config.api_base_url,
            timeout_s=opts.client_timeout_s,
            max_inline_wait_s=opts.max_inline_wait_s,
        ),
        process_before_response=False,
        request_verification_enabled=True,
    )

    @app.middleware
    async def once_per_delivery(body: dict[str, Any], next: Any) -> BoltResponse | None:
        key = delivery_key(body)
        if key:
            first = await handlers.writer.run(partial(dedup.claim, kind=dedup.SLACK, key=key))
            if not first:
                log.info("duplicate Slack delivery ignored", key=key)
                return BoltResponse(status=200, body="")
        return await next()

    register(app, handlers)

    @app.action(ACTION_OPEN_PAGE)
    async def page_opened(ack: Any) -> None:
        """Slack posts block_actions for URL buttons too: acknowledged, nothing to do (the
        browser opens the page). Unanswered, Bolt would answer 404."""
        await ack()

    return app


def delivery_key(body: dict[str, Any]) -> str | None:
    """What one interaction is known by across its deliveries, or None (not de-duplicated).

    An Events API retry repeats its `event_id`. A double click on a button sends the same
    `trigger_id` and `action_ts` twice, and a replayed slash command repeats its `trigger_id`:
    without this, a double-clicked Escalate would page two levels. A deliberate second click
    is a new interaction (a new `trigger_id`) and acts again.
    """
    kind = body.get("type")
    if kind == "event_callback":
        return f"event:{body['event_id']}" if body.get("event_id") else None
    if kind == "block_actions":
        action = (body.get("actions") or [{}])[0]
        once = body.get("trigger_id") or action.get("action_ts")
        user = acting_user(body)
        return f"action:{user}:{action.get('action_id')}:{once}" if once else None
    if body.get("command") and body.get("trigger_id"):
        return f"command:{acting_user(body)}:{body['trigger_id']}"
    return None


class SocketMode:
    """Slack over Socket Mode: connects in the background and keeps trying while Slack is
    unreachable (the rest of the app runs meanwhile)."""

    def __init__(self, app: AsyncApp, tokens: SlackTokens) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        self.handler = AsyncSocketModeHandler(app, _secret(tokens.app, "SLACK_APP_TOKEN", "socket"))
        self.task: asyncio.Task[None] | None = None

    async def start(self, stack: AsyncExitStack) -> None:
        self.task = asyncio.create_task(self._connect(), name="slack-socket-mode")
        stack.push_async_callback(self._close)

    def readiness(self) -> str:
        task = self.task
        if task is not None and task.done() and not task.cancelled() and not task.exception():
            return "ok"
        return "socket mode not connected"

    async def _connect(self) -> None:

        delay = 1.0
        while True:
            try:
                await self.handler.connect_async()
                log.info("slack socket mode connected")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("socket mode connection failed", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)

    async def _close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self.task
        with suppress(Exception):
            await self.handler.close_async()
