"""The Slack component: Bolt app, notifier and outbox drainer, wired into the runtime.

``start_slack`` (a ``firebreak.app.Component``) does, per ``slack.mode``:

* ``http``: a Bolt ``AsyncApp`` served at ``POST /slack/events`` (signature verified with
  ``SLACK_SIGNING_SECRET``); ``SLACK_BOT_TOKEN`` is handed to Bolt by an ``authorize``
  function, so Bolt never calls ``auth.test``.
* ``socket``: the same app over Socket Mode (``SLACK_APP_TOKEN``), connected in the background.
* ``console``: no network; messages are printed to the terminal. When ``SLACK_SIGNING_SECRET``
  is set, the Bolt app is served at ``POST /slack/events`` too, so signed Slack requests
  (``firebreak demo``'s button click, a local curl) run the real handlers.

In every mode the notifier (``runtime.notifier``) is an ``OutboxNotifier`` that follows the
incident bus: OPENED/UPDATED/RESOLVED re-render the card, RESOLVED also says so in the thread.

Slack retries an Events API delivery it thinks failed (``X-Slack-Retry-Num``) with the same
``event_id``. A global middleware records each ``event_id`` in the store (``INSERT … ON
CONFLICT DO NOTHING``) before any listener runs, and acknowledges repeats without handling
them: replicas behind one load balancer share the table, so a retry that lands on another
replica is still caught, and so is one that arrives after a restart. Handling is therefore
at most once per event (Bolt acknowledges events before the listener runs, so a retry means
Slack did not hear the acknowledgement, not that the work failed).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from rich.console import Console
from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult

from firebreak.app import Component, Runtime
from firebreak.bot import cards
from firebreak.bot.slack_handlers import register
from firebreak.bot.slack_http import BoltHttpHandler
from firebreak.bot.slack_outbox import OutboxNotifier, OutboxSettings
from firebreak.bot.slack_transport import ConsoleTransport, SlackTransport, make_client
from firebreak.events import Change, IncidentEvent
from firebreak.store import slack as slack_store

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


def slack_component(options: SlackOptions | None = None) -> Component:
    """A ``start_slack`` with non-default tuning (tests use short backoffs)."""
    opts = options or SlackOptions()

    async def start(runtime: Runtime, stack: AsyncExitStack) -> None:
        await _start(runtime, stack, opts)

    return start


async def start_slack(runtime: Runtime, stack: AsyncExitStack) -> None:
    """The component ``firebreak serve`` starts."""
    await _start(runtime, stack, SlackOptions())


def _secret(value: Any, variable: str, mode: str) -> str:
    if value is None or not value.get_secret_value():
        raise SlackSetupError(f"slack.mode is {mode} but {variable} is not set")
    return value.get_secret_value()


async def _start(runtime: Runtime, stack: AsyncExitStack, opts: SlackOptions) -> None:
    config = runtime.config.slack
    secrets = runtime.secrets
    mode = config.mode
    if mode == "console":
        transport: Any = ConsoleTransport(opts.console)
    else:
        token = _secret(secrets.slack_bot_token, "SLACK_BOT_TOKEN", mode)
        transport = SlackTransport(
            make_client(
                token,
                config.api_base_url,
                timeout_s=opts.client_timeout_s,
                max_inline_wait_s=opts.max_inline_wait_s,
            )
        )
    notifier = OutboxNotifier(
        runtime.engine,
        runtime.writer,
        transport,
        channel=config.channel,
        alertmanager_url=config.alertmanager_url,
        settings=opts.outbox,
    )

    if mode == "socket":
        await _start_socket_mode(build_bolt_app(runtime, notifier, opts), runtime, stack)
    elif mode == "http" or secrets.slack_signing_secret is not None:
        app = build_bolt_app(runtime, notifier, opts)
        runtime.slack_handler = BoltHttpHandler(app, runtime.config.server.max_body_bytes)

    active = True

    def on_incident(event: IncidentEvent) -> None:
        if not active:
            return
        notifier.card_changed(event.incident_id, routine=event.change == Change.ALERTS)
        if event.change == Change.RESOLVED:
            notifier.post_in_thread(
                event.incident_id,
                cards.resolution_text(event.incident_id, event.actor),
                purpose="resolution",
            )

    runtime.notifier = notifier
    runtime.bus.subscribe(on_incident)
    await notifier.start()
    await notifier.recover()
    runtime.readiness_checks["slack"] = notifier.readiness

    async def stop() -> None:
        nonlocal active
        active = False
        runtime.slack_handler = None
        await notifier.stop()
        if runtime.notifier is notifier:
            runtime.notifier = None

    stack.push_async_callback(stop)
    log.info("slack started", mode=mode, channel=config.channel)


def build_bolt_app(runtime: Runtime, notifier: OutboxNotifier, opts: SlackOptions) -> AsyncApp:
    config = runtime.config.slack
    secrets = runtime.secrets
    token = (
        CONSOLE_TOKEN  # console mode never calls the Web API with it
        if config.mode == "console"
        else _secret(secrets.slack_bot_token, "SLACK_BOT_TOKEN", config.mode)
    )
    signing_secret = (
        _secret(secrets.slack_signing_secret, "SLACK_SIGNING_SECRET", config.mode)
        if config.mode in ("http", "console")
        else (
            secrets.slack_signing_secret.get_secret_value()
            if secrets.slack_signing_secret
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
    async def once_per_event(body: dict[str, Any], next: Any) -> BoltResponse | None:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id:
            first = await runtime.writer.run(
                partial(slack_store.first_delivery, key=f"event:{event_id}")
            )
            if not first:
                log.info("duplicate Slack delivery ignored", event_id=event_id)
                return BoltResponse(status=200, body="")
        return await next()

    register(app, runtime, notifier)
    return app


async def _start_socket_mode(app: AsyncApp, runtime: Runtime, stack: AsyncExitStack) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    app_token = _secret(runtime.secrets.slack_app_token, "SLACK_APP_TOKEN", "socket")
    handler = AsyncSocketModeHandler(app, app_token)

    async def connect() -> None:
        delay = 1.0
        while True:  # Slack unreachable at start: keep trying, the rest of the app runs
            try:
                await handler.connect_async()
                log.info("slack socket mode connected")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("socket mode connection failed", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)

    task = asyncio.create_task(connect(), name="slack-socket-mode")

    async def close() -> None:
        task.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await task
        with suppress(Exception):
            await handler.close_async()

    stack.push_async_callback(close)
    runtime.readiness_checks["slack_socket"] = lambda: (
        "ok"
        if task.done() and not task.cancelled() and task.exception() is None
        else "socket mode not connected"
    )
