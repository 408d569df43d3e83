"""The durable Slack notifier: every message is written to the outbox table, then delivered.

``OutboxNotifier`` implements ``incidents.ports.Notifier`` for Slack and for the console (the
transport differs, nothing else). Callers never wait for Slack:

* ``card_changed`` / ``tell`` / ``tell_user`` write one outbox row (in a task,
  in call order, through the store writer) and return; ``enqueue_*`` do the same for callers
  that can await. Card changes are coalesced, and routine ones (more alerts) take turns across
  incidents under Slack's ``chat.update`` limit (see ``card_changed``).
* One background drainer delivers rows. Rows of one *lane* (an incident, or a DM) go out in
  order; a failed row blocks only its lane. Transient failures (Slack down, 5xx, 429, network)
  back off exponentially (``backoff_initial_s`` doubling up to ``backoff_max_s``, or Slack's
  ``Retry-After``) and are retried until they succeed. While Slack is failing, each pass sends
  a single probe instead of one request per lane; the first success makes everything that was
  backing off due at once, so the cards catch up as soon as Slack is back. An API refusal
  (``channel_not_found``…) is retried ``max_attempts`` times, then the row is marked failed
  and logged.
* Card rows carry no content: the card is rendered from the incident at delivery (with its
  last page, store/escalations.py, and its silence, store/silences.py), posted the first time
  (its channel and ts saved in ``slack_messages``) and ``chat.update``-d ever after. The
  first post picks the channel: the first ``routing`` rule matching the incident's labels,
  else ``slack.channel``; the thread (RCA, pages) follows the card. Pending card rows of an
  incident collapse into one delivery. A thread reply posts the card first if the incident
  has none yet, so nothing is ever said about an incident without its card.
* Thread rows carry a notice (incidents/notices.py), rendered at delivery like the card (the
  RCA from its stored analysis). A notice with a key names one message: the first is posted,
  later ones ``chat.update`` it (a remediation proposal, then its decision; an RCA reply,
  then the same reply showing a person's verdict). An update-only notice whose message was
  never posted is dropped.
* Several replicas may share one PostgreSQL: only the holder of the ``slack-outbox`` lease
  drains (renewed every loop, expires after ``lease_ttl_s``), so a card is never posted twice by
  two replicas racing. The others only write rows.
* On start, incidents that should have a card but neither have one nor wait for one get one
  (an enqueue lost in a crash), and open incidents' cards are refreshed. While an incident is
  open its card is refreshed every ``card_age_refresh_s`` as a routine change, so "firing for
  14 min" (worked out when the card is rendered) stays roughly current.
* The card links to the incident's page ("Open in Firebreak"), signed at each render
  (bot/web/auth.py) so the link in a card that is kept current never expires.
* A delivered RCA brings a file row (lane ``files:<id>``, in the same commit): a PNG chart of
  the alert's own metric (bot/web/charts.py), uploaded into the thread. Its own lane, so a
  failing upload holds back nothing else; retried and given up like any row.

A message is posted once, also when the store fails between Slack's answer and the commit
that records it (a full disk, a database restart): the posted message is kept in memory until
its record commits, and the next attempt records it instead of posting it again. A card is
also safe from a crash in that window: its intent (channel, a key) is written before
`chat.postMessage`, and the card carries the key in its message metadata; an intent left
behind sends the next attempt to look for the card in the channel (`conversations.history`)
before posting. Where Slack will not say (no `channels:history` scope), the card is posted
again: at least once rather than never. Thread replies, DMs and files are at least once
across a crash in that window.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import structlog
from prometheus_client import Gauge
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.bot.messages.blocks import blocks_json
from firebreak.bot.messages.escalation import channel_page_text, handoff_text, paged_channels
from firebreak.bot.messages.incident import OnCallView, incident_card
from firebreak.bot.messages.notices import notice_message, notice_purpose
from firebreak.bot.messages.replies import resolution_text
from firebreak.bot.slack_transport import PermanentError, ThreadFile, TransientError, Transport
from firebreak.bot.web.auth import Secrets as WebSecrets
from firebreak.bot.web.auth import incident_link
from firebreak.bot.web.charts import ChartDrawer, alert_reading, samples_of
from firebreak.incidents.events import Change, IncidentEvent
from firebreak.incidents.notices import NOTICE, Notice, OnCallHandoff, Paged, RcaReady
from firebreak.oncall.config import RouteRule
from firebreak.oncall.routing import route
from firebreak.store import dedup, escalations, incidents, outbox, silences
from firebreak.store.health import describe, is_outage
from firebreak.store.incidents import CARD, utcnow
from firebreak.store.schemas import IncidentOut
from firebreak.store.writer import Writer
from firebreak.tools.promql import short_metric
from firebreak.tools.redact import Redactor
from firebreak.tools.text import truncate

log = structlog.get_logger(__name__)

LEASE_NAME = "slack-outbox"


@dataclass(frozen=True)
class OutboxSettings:
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 5.0
    poll_s: float = 1.0  # how often rows written by other replicas are looked for
    lease_ttl_s: float = 20.0
    max_attempts: int = 5  # for API refusals; transient failures retry forever
    batch: int = 200
    concurrency: int = 4  # lanes delivered at once
    recover_window_s: float = 24 * 3600  # resolved incidents this recent still get a card
    keep_done_s: float = 7 * 24 * 3600
    keep_seen_s: float = 24 * 3600
    final_drain_s: float = 3.0  # on shutdown, try to deliver what is due for this long
    card_interval_s: float = 1.0  # at most one card refresh per incident this often
    routine_cards_per_minute: float = 40.0  # alert-count refreshes, all incidents together
    card_age_refresh_s: float = 600.0  # open cards re-rendered this often ("firing for …")


# Set in the tasks `_spawn` starts (the Notifier's calls, which return at once): their rows
# wait out a store outage, where an awaiting caller is told of it.
_PATIENT: ContextVar[bool] = ContextVar("outbox_patient", default=False)


async def _patiently(coro: Coroutine[Any, Any, None]) -> None:
    _PATIENT.set(True)
    await coro


KIND_CHART = "chart"  # the alert's chart for the thread, rendered at delivery
CHART_PURPOSE = "chart"
CARD_EVENT = "firebreak_incident_card"  # a card's Slack message metadata: this, and its key
CARD_SEARCH_MARGIN_S = 300  # an earlier card is looked for from this long before its intent


class OutboxNotifier:
    """``Notifier`` with a durable outbox; ``transport`` is Slack or the console."""

    def __init__(
        self,
        engine: AsyncEngine,
        writer: Writer,
        transport: Transport,
        *,
        charts: ChartDrawer,
        ingest_busy: Callable[[], bool],
        channel: str,
        public_url: str,
        secrets: WebSecrets,
        alertmanager_url: str | None = None,
        settings: OutboxSettings | None = None,
        owner: str | None = None,
        routing: Sequence[RouteRule] = (),
        silence_durations: Sequence[str] = (),
        redactor: Redactor | None = None,
    ) -> None:
        self.engine = engine
        self.redactor = redactor or Redactor()  # label values as cards show them
        self.writer = writer
        self.transport = transport
        self.charts = charts  # the thread's PNG charts, drawn in a worker process
        # While an alert storm is taken in, one lane is delivered at a time: Slack
        # takes about a message a second per channel anyway, and the CPU goes to the webhook.
        self._ingest_busy = ingest_busy
        self.channel = channel  # `slack.channel`: where a card goes when no routing rule matches
        self.public_url = public_url  # the incident pages' address, for "Open in Firebreak"
        self.secrets = secrets  # what signs those links
        self.alertmanager_url = alertmanager_url
        self.routing = list(routing)
        self.silence_durations = list(silence_durations)  # empty: no Alertmanager, no controls
        self.settings = settings or OutboxSettings()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._writes: set[asyncio.Task[Any]] = set()
        self._card_waits: dict[int, asyncio.Event] = {}  # incidents whose card row is coming
        self._next_routine_card = 0.0  # monotonic time of the next free routine refresh
        self._card_written_at: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._leader = False
        self._lease_renewed_at = 0.0
        self._degraded = False
        self._probe_delay = 0.0
        self._dm_channels: dict[str, str] = {}
        self._last_maintenance = 0.0
        self._last_age_refresh = 0.0
        self.delivered = 0  # counters for readiness / tests
        self.failures = 0
        # Posts Slack has and the store has not recorded yet (it failed right after): by
        # incident for cards, by outbox row for the rest (None when there is nothing to keep
        # but the fact). The next attempt records them instead of posting again.
        self._unrecorded_cards: dict[int, tuple[str, str]] = {}
        self._unrecorded: dict[int, tuple[str, str] | None] = {}

    # ------------------------------------------------------------------ Notifier

    def card_changed(self, incident_id: int, *, routine: bool = False) -> None:
        """Coalesced, debounced and, when `routine`, paced.

        While a card row for the incident is about to be written, more changes need no row of
        their own: the card is rendered from the incident when it is sent, after that row
        commits, so it shows them. A card is refreshed at most once per `card_interval_s`.
        Routine changes (more alerts joined) also take turns across all incidents, at most
        `routine_cards_per_minute`: Slack allows about 50 chat.update a minute, and a storm
        over 50 groups would otherwise ask for 50 a second, get 429s that hold up the pages
        behind them, and spend the event loop rendering cards nobody can read that fast. Any
        other change (a person acted, the incident opened or resolved) is written at once,
        cutting a routine wait short."""
        waiting = self._card_waits.get(incident_id)
        if waiting is not None:
            if not routine:
                waiting.set()
            return
        now = time.monotonic()
        last = self._card_written_at.get(incident_id)
        due = now if last is None else last + self.settings.card_interval_s
        if routine:
            due = max(due, self._next_routine_card)
            self._next_routine_card = due + 60 / self.settings.routine_cards_per_minute
        wake = asyncio.Event()
        self._card_waits[incident_id] = wake
        self._spawn(self._enqueue_card_at(incident_id, due - now, wake))

    async def _enqueue_card_at(self, incident_id: int, wait_s: float, wake: asyncio.Event) -> None:
        try:
            if wait_s > 0:
                with suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), wait_s)
            await self.enqueue_card(incident_id)
            self._card_written_at[incident_id] = time.monotonic()
        finally:
            self._card_waits.pop(incident_id, None)

    def tell(self, incident_id: int, notice: Notice) -> None:
        """In the thread; a page of a channel is also posted in that channel (`<!here>`)."""
        payload = {"notice": notice.model_dump(mode="json")}
        self._spawn(self._enqueue_thread_payload(incident_id, payload, notice_purpose(notice)))
        if isinstance(notice, Paged):
            text = channel_page_text(incident_id, notice.level)
            for channel in paged_channels(notice.targets):
                self._spawn(self.enqueue_message(channel, text, purpose="page"))

    def tell_user(self, user_id: str, notice: Notice) -> None:
        if isinstance(notice, OnCallHandoff):
            text = handoff_text(notice)
        else:
            text, _ = notice_message(getattr(notice, "incident_id", 0), notice, None, None)
        self._spawn(self.enqueue_dm(user_id, text))

    def follow(self, event: IncidentEvent) -> None:
        """What Slack hears of an incident change: the card kept current, and a thread reply
        when the incident resolves."""
        self.card_changed(event.incident_id, routine=event.change == Change.ALERTS)
        if event.change == Change.RESOLVED:
            self.say_in_thread(
                event.incident_id,
                resolution_text(event.incident_id, event.actor),
                purpose="resolution",
            )

    def card_channel(self, labels: Mapping[str, str]) -> str:
        """Where an incident with these labels gets its card (and so its thread): the first
        matching `routing` rule's channel, else `slack.channel`. Decided when the card is
        first posted; from then on the card's channel is the one stored with it."""
        return route(labels, self.channel, self.routing)

    # ------------------------------------------------------------------ awaitable enqueue

    async def enqueue_card(self, incident_id: int) -> None:
        await self._enqueue(
            lane=outbox.incident_lane(incident_id),
            kind=outbox.KIND_CARD,
            purpose=CARD,
            incident_id=incident_id,
        )

    def say_in_thread(self, incident_id: int, text: str, *, purpose: str) -> None:
        """The Slack surface's own reply in a thread (a resolution), already rendered."""
        self._spawn(self.enqueue_thread(incident_id, text, purpose=purpose))

    async def enqueue_thread(
        self, incident_id: int, text: str, blocks: list[Any] | None = None, *, purpose: str = "note"
    ) -> None:
        payload = {"text": text, "blocks": blocks_json(blocks)}
        await self._enqueue_thread_payload(incident_id, payload, purpose)

    async def _enqueue_thread_payload(
        self, incident_id: int, payload: dict[str, Any], purpose: str
    ) -> None:
        await self._enqueue(
            lane=outbox.incident_lane(incident_id),
            kind=outbox.KIND_THREAD,
            purpose=purpose[:32],
            incident_id=incident_id,
            payload=payload,
        )

    async def enqueue_thread_file(
        self, incident_id: int, file: ThreadFile, *, purpose: str = "file"
    ) -> None:
        """A text file shared into the incident's thread (posting the card first if need be);
        its content is kept in the outbox as text."""
        await self._enqueue(
            lane=outbox.incident_lane(incident_id),
            kind=outbox.KIND_FILE,
            purpose=purpose[:32],
            incident_id=incident_id,
            payload={
                "filename": file.filename,
                "title": file.title,
                "content": file.content.decode("utf-8"),
                "comment": file.comment,
            },
        )

    async def enqueue_dm(self, user_id: str, text: str) -> None:
        await self._enqueue(
            lane=f"dm:{user_id}"[:64],
            kind=outbox.KIND_DM,
            purpose="dm",
            payload={"user": user_id, "text": text},
        )

    async def enqueue_message(
        self,
        channel: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[Any] | None = None,
        purpose: str = "message",
    ) -> None:
        """A message not tied to an incident (e.g. an answer to a mention elsewhere)."""
        await self._enqueue(
            lane=f"channel:{channel}"[:64],
            kind=outbox.KIND_MESSAGE,
            purpose=purpose[:32],
            payload={
                "channel": channel,
                "thread_ts": thread_ts,
                "text": text,
                "blocks": blocks_json(blocks),
            },
        )

    async def _enqueue(self, **row: Any) -> None:
        """Through the store writer: rows commit in call order, many sharing one commit. A
        row nobody waits for (`_spawn`'s) waits out a store outage, backing off, instead of
        being lost: an RCA announced the moment the disk filled still reaches its thread."""
        delay = self.settings.backoff_initial_s
        while True:
            try:
                await self.writer.run(partial(outbox.enqueue, **row))
                break
            except Exception as exc:
                if not (_PATIENT.get() and is_outage(exc)):
                    raise
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.settings.backoff_max_s)
        self._wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None:
            self._track(running.create_task(_patiently(coro)))
        elif self._loop is not None and not self._loop.is_closed():  # from another thread
            self._loop.call_soon_threadsafe(
                lambda: self._track(asyncio.ensure_future(_patiently(coro)))
            )
        else:
            coro.close()
            raise RuntimeError("the Slack notifier is not running")

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not record a Slack message", error=repr(task.exception()))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._last_age_refresh = self._loop.time()  # `recover` refreshes them at start
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="slack-outbox")

    async def stop(self) -> None:
        """Record what callers already handed over, then stop delivering (rows stay)."""
        if self._writes:  # bounded: a card missed here is refreshed by `recover` at next start
            await asyncio.wait(set(self._writes), timeout=max(self.settings.final_drain_s, 1.0))
        if self._writes:  # still waiting for the store: given up on, said so
            log.warning("Slack messages not recorded before stopping", count=len(self._writes))
            for task in list(self._writes):
                task.cancel()
            await asyncio.gather(*self._writes, return_exceptions=True)
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._leader and self.settings.final_drain_s > 0:
            try:  # SIGTERM: say what is due (a resolution reply...) before leaving
                await asyncio.wait_for(self.drain_once(), self.settings.final_drain_s)
            except (TimeoutError, Exception):
                log.info("Slack messages left for the next start", exc_info=True)
        if self._leader:
            try:
                await self.writer.run(
                    partial(outbox.release_lease, name=LEASE_NAME, owner=self.owner)
                )
            except Exception:
                log.warning("could not release the Slack outbox lease", exc_info=True)
            self._leader = False
        await self.transport.close()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def readiness(self) -> str:
        return "ok" if self.running else "outbox drainer not running"

    async def recover(self) -> None:
        """Incidents that should have a card and do not wait for one get one; open incidents'
        cards are refreshed (a change may have been lost with the previous process)."""
        since = utcnow() - timedelta(seconds=self.settings.recover_window_s)
        async with self.engine.connect() as conn:
            missing = await outbox.incidents_without_card(conn, since)
            refresh = await outbox.open_incidents_with_card(conn)
        for incident_id in [*missing, *refresh]:
            await self.enqueue_card(incident_id)
        if missing:
            log.info("incident cards to catch up", incidents=missing)

    async def idle(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109 - a polling helper
        """Wait until nothing is left to deliver (demo, tests). False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self._writes:
                await asyncio.gather(*list(self._writes), return_exceptions=True)
            async with self.engine.connect() as conn:
                if await outbox.count_pending(conn) == 0 and not self._writes:
                    return True
            self._wake.set()
            await asyncio.sleep(0.02)
        return False

    # ------------------------------------------------------------------ the drainer

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            wait = self.settings.poll_s
            try:
                self._leader = await self._take_lease()
                if self._leader:
                    await self._maintenance()
                    await self._refresh_ages()
                    await self.drain_once()
                    wait = await self._time_to_next_due()
                    if self._degraded:  # the next probe after the last one's backoff
                        wait = max(wait, self._probe_delay)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Slack outbox drainer failed; retrying")
                wait = max(self.settings.backoff_initial_s, 0.05)
            if wait > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
                except TimeoutError:
                    pass

    async def _take_lease(self) -> bool:
        """Take or renew the lease, but renew only once a third of its life has passed: the
        drainer loops on every wake-up, and a write per loop is a write per enqueued message."""
        now = time.monotonic()
        if self._leader and now - self._lease_renewed_at < self.settings.lease_ttl_s / 3:
            return True
        leader = await self.writer.run(
            partial(
                outbox.acquire_lease,
                name=LEASE_NAME,
                owner=self.owner,
                ttl=timedelta(seconds=self.settings.lease_ttl_s),
            )
        )
        if leader:
            self._lease_renewed_at = now
        return leader

    async def _time_to_next_due(self) -> float:
        async with self.engine.connect() as conn:
            due = await outbox.next_due(conn)
        if due is None:
            return self.settings.poll_s
        left = (due - utcnow()).total_seconds()
        return max(0.0, min(left, self.settings.poll_s))

    async def _maintenance(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_maintenance < 600:
            return
        self._last_maintenance = loop.time()
        keep_done = timedelta(seconds=self.settings.keep_done_s)
        keep_seen = timedelta(seconds=self.settings.keep_seen_s)

        def prune(conn: Connection) -> None:
            outbox.prune_outbox(conn, keep_done)
            dedup.prune(conn, keep_seen)

        await self.writer.run(prune)

    async def _refresh_ages(self) -> None:
        """Open cards re-rendered now and then (routine: they take turns with the others)."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_age_refresh < self.settings.card_age_refresh_s:
            return
        self._last_age_refresh = loop.time()
        async with self.engine.connect() as conn:
            open_ids = await outbox.open_incidents_with_card(conn)
        for incident_id in open_ids:
            self.card_changed(incident_id, routine=True)

    async def drain_once(self) -> int:
        """Deliver every row that is due now, lane by lane; returns how many were delivered."""
        async with self.engine.connect() as conn:
            items = await outbox.pending(conn, self.settings.batch)
        lanes: OrderedDict[str, list[outbox.OutboxItem]] = OrderedDict()
        for item in items:
            lanes.setdefault(item.lane, []).append(item)
        now = utcnow()
        limit = asyncio.Semaphore(1 if self._ingest_busy() else self.settings.concurrency)
        before = self.delivered

        probe = {"taken": False}

        async def run_lane(lane: list[outbox.OutboxItem]) -> None:
            async with limit:
                card_done_up_to = 0
                for item in lane:
                    if item.kind == outbox.KIND_CARD and item.id <= card_done_up_to:
                        continue  # collapsed into an earlier card delivery of this pass
                    if item.next_attempt_at > now:
                        return
                    if self._degraded:  # Slack is failing: one probe per pass, not every lane
                        if probe["taken"]:
                            return
                        probe["taken"] = True
                    if item.kind == outbox.KIND_CARD:
                        card_done_up_to = max(i.id for i in lane if i.kind == outbox.KIND_CARD)
                    if not await self._deliver(item, card_done_up_to):
                        return

        await asyncio.gather(*(run_lane(lane) for lane in lanes.values()))
        return self.delivered - before

    async def _deliver(self, item: outbox.OutboxItem, card_up_to: int) -> bool:
        """One row; True when the lane may go on."""
        try:
            if item.kind == outbox.KIND_CARD:
                assert item.incident_id is not None
                await self._deliver_card(item.incident_id, card_up_to)
            elif item.kind == outbox.KIND_THREAD:
                await self._deliver_thread(item)
            elif item.kind == outbox.KIND_DM:
                await self._deliver_dm(item)
            elif item.kind == KIND_CHART:
                await self._deliver_chart(item)
            elif item.kind == outbox.KIND_FILE:
                await self._deliver_file(item)
            else:
                await self._deliver_message(item)
        except TransientError as exc:
            return await self._retry_later(item, exc, exc.retry_after, transient=True)
        except PermanentError as exc:
            return await self._retry_later(item, exc, None, transient=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or the store: do not spin on it
            if is_outage(exc):  # one line: the writer already says the store is away
                log.warning("Slack delivery waits for the store", item=item.id, error=describe(exc))
            else:
                log.exception("Slack delivery failed", item=item.id, kind=item.kind)
            return await self._retry_later(item, exc, None, transient=False)
        self.delivered += 1
        if self._degraded:  # Slack answers again: stop waiting out backoffs
            self._degraded = False
            await self.writer.run(outbox.bring_forward)
            self._wake.set()
        return True

    async def _retry_later(
        self, item: outbox.OutboxItem, exc: Exception, retry_after: float | None, *, transient: bool
    ) -> bool:
        attempts = item.attempts + 1
        self.failures += 1
        error = f"{type(exc).__name__}: {exc}"
        if not transient and attempts >= self.settings.max_attempts:
            log.error(
                "giving up on a Slack message",
                item=item.id,
                kind=item.kind,
                incident_id=item.incident_id,
                error=error,
            )
            await self.writer.run(
                partial(outbox.mark_failed, item_id=item.id, attempts=attempts, error=error)
            )
            return True
        self._degraded = self._degraded or transient
        delay = min(
            self.settings.backoff_max_s,
            self.settings.backoff_initial_s * 2 ** min(attempts - 1, 30),
        )
        if retry_after is not None:
            delay = max(delay, retry_after)
        if transient:
            self._probe_delay = delay
        log.warning(
            "Slack delivery postponed",
            item=item.id,
            kind=item.kind,
            incident_id=item.incident_id,
            attempt=attempts,
            retry_in_s=round(delay, 2),
            error=error,
        )
        await self.writer.run(
            partial(
                outbox.mark_retry,
                item_id=item.id,
                attempts=attempts,
                next_at=utcnow() + timedelta(seconds=delay),
                error=error,
            )
        )
        return False

    # ------------------------------------------------------------------ deliveries

    async def render_card(self, incident: IncidentOut) -> tuple[str, list[dict[str, Any]]]:
        """The incident's card as it is now: its last page, its silence, a fresh page link.
        Its labels as people may read them (`IncidentOut.shown`)."""
        now = utcnow()
        incident = incident.shown(self.redactor.redact_value)
        async with self.engine.connect() as conn:
            view = OnCallView(
                page=await escalations.last_page(conn, incident.id),
                silence=await silences.active_silence(conn, incident.id, now),
                silence_durations=self.silence_durations,
            )
        text, blocks = incident_card(
            incident,
            alertmanager_url=self.alertmanager_url,
            oncall=view,
            page_url=incident_link(self.public_url, incident.id, self.secrets, now),
            now=now,
        )
        return text, blocks_json(blocks) or []

    async def _deliver_card(self, incident_id: int, up_to: int) -> None:
        async with self.engine.connect() as conn:
            incident = await incidents.get_incident(conn, incident_id)
            ref = await outbox.card_ref(conn, incident_id)
        if incident is not None and ref is None:
            await self._post_card(incident, up_to=up_to)
            return
        if incident is not None and ref is not None:
            text, blocks = await self.render_card(incident)
            await self.transport.update(ref[0], ref[1], text, blocks)
        await self.writer.run(
            partial(outbox.complete_cards, incident_id=incident_id, up_to_id=up_to)
        )

    async def _ensure_card(self, incident_id: int) -> tuple[str, str] | None:
        """The card's (channel, ts), posting it first if the incident has none yet."""
        async with self.engine.connect() as conn:
            ref = await outbox.card_ref(conn, incident_id)
            incident = None if ref else await incidents.get_incident(conn, incident_id)
        if ref is not None or incident is None:
            return ref
        return await self._post_card(incident, up_to=None)

    async def _post_card(self, incident: Any, *, up_to: int | None) -> tuple[str, str]:
        """Post the card for the first time and keep where it is; card rows up to `up_to` are
        done with it. Never twice: see `_card_in_slack`."""
        posted = self._unrecorded_cards.get(incident.id) or await self._card_in_slack(incident)

        def card_posted(conn: Connection) -> None:
            incidents.save_slack_message(conn, incident.id, CARD, *posted)
            outbox.forget_intent(conn, incident.id, CARD)
            if up_to is not None:
                outbox.complete_cards(conn, incident.id, up_to)

        await self.writer.run(card_posted)
        self._unrecorded_cards.pop(incident.id, None)
        return posted

    async def _card_in_slack(self, incident: Any) -> tuple[str, str]:
        """The card as Slack has it. Its intent is written first (no post while the store
        cannot even take that); an intent an earlier attempt left behind means that attempt
        may have posted it, so the channel is searched for the key the card carries in its
        metadata, and it is posted only when it is not there. Until its record commits the
        posted card is kept in memory, so a store failing right after the post never posts
        it again, and the channel is not searched on every retry."""
        intent = await self.writer.run(
            partial(
                outbox.intend_post,
                incident_id=incident.id,
                purpose=CARD,
                channel=self.card_channel(incident.labels),
                key=uuid.uuid4().hex,
            )
        )
        ts = await self._find_card(incident.id, intent) if intent.earlier else None
        if ts is not None:
            posted = (intent.channel, ts)
        else:
            text, blocks = await self.render_card(incident)
            metadata = {"event_type": CARD_EVENT, "event_payload": {"key": intent.key}}
            posted = await self.transport.post(intent.channel, text, blocks, None, metadata)
        self._unrecorded_cards[incident.id] = posted
        return posted

    async def _find_card(self, incident_id: int, intent: outbox.PostIntent) -> str | None:
        """An earlier attempt's card in its channel; None when it is not there, or when Slack
        will not say (no `channels:history` scope...: then the card is posted, at least once,
        as before)."""
        oldest = intent.started_at - timedelta(seconds=CARD_SEARCH_MARGIN_S)
        try:
            ts = await self.transport.find_posted(
                intent.channel, event_type=CARD_EVENT, key=intent.key, oldest=oldest
            )
        except PermanentError as exc:
            log.warning(
                "cannot look for an earlier card in Slack; posting it",
                incident_id=incident_id,
                error=str(exc),
            )
            return None
        log.info("earlier card attempt", incident_id=incident_id, found=ts is not None)
        return ts

    async def _deliver_thread(self, item: outbox.OutboxItem) -> None:
        incident_id = item.incident_id
        assert incident_id is not None
        ref = await self._ensure_card(incident_id)
        if ref is None:
            await self._done(item)  # the incident is gone
            return
        text, blocks, key, update_only = await self._thread_message(incident_id, item.payload)
        if key is not None:
            async with self.engine.connect() as conn:
                existing = await incidents.slack_message(conn, incident_id, key)
            if existing is not None or update_only:
                if existing is not None:
                    await self.transport.update(existing[0], existing[1], text, blocks)
                await self._done(item)
                return
        posted = self._unrecorded.get(item.id)
        if posted is None:
            posted = await self.transport.post(ref[0], text, blocks, ref[1])
            self._unrecorded[item.id] = posted
        channel, ts = posted
        notice = item.payload.get("notice") or {}

        def reply_posted(conn: Connection) -> None:
            incidents.save_slack_message(conn, incident_id, key or item.purpose, channel, ts)
            outbox.mark_done(conn, [item.id])
            if notice.get("kind") == RcaReady.model_fields["kind"].default:
                outbox.enqueue(
                    conn,
                    lane=f"files:{incident_id}",
                    kind=KIND_CHART,
                    purpose=CHART_PURPOSE,
                    incident_id=incident_id,
                    payload={"run_id": notice.get("run_id")},
                )

        await self.writer.run(reply_posted)
        self._unrecorded.pop(item.id, None)

    async def _thread_message(
        self, incident_id: int, payload: dict[str, Any]
    ) -> tuple[str, list[dict[str, Any]] | None, str | None, bool]:
        """(text, blocks, key, update only) of a thread row: a notice rendered now, or the
        bot's own text."""
        if "notice" not in payload:
            return payload.get("text") or "", payload.get("blocks"), None, False
        notice = NOTICE.validate_python(payload["notice"])
        analysis = incident = None
        if isinstance(notice, RcaReady):
            async with self.engine.connect() as conn:
                analysis = await incidents.analysis_of_run(conn, notice.run_id)
                incident = await incidents.get_incident(conn, incident_id, with_alerts=False)
            if analysis is None or incident is None:
                raise PermanentError(f"no stored analysis for run {notice.run_id}")
            incident = incident.shown(self.redactor.redact_value)
        text, blocks = notice_message(
            incident_id, notice, analysis, incident, public_url=self.public_url
        )
        return text, blocks_json(blocks), notice.key, notice.update_only

    async def _deliver_chart(self, item: outbox.OutboxItem) -> None:
        """The PNG chart of the alert's own metric, into the incident's thread."""
        incident_id = item.incident_id
        assert incident_id is not None
        async with self.engine.connect() as conn:
            incident = await incidents.get_incident(conn, incident_id)
            gathered = await incidents.latest_evidence(conn, incident_id)
            ref = await outbox.card_ref(conn, incident_id)
        chart = None
        if incident is not None and ref is not None:
            chart = await chart_file(self.charts, incident, (gathered or {}).get("metrics") or [])
        if chart is None or ref is None:
            log.info("no chart for the thread", incident_id=incident_id, item=item.id)
            await self._done(item)
        else:
            await self._once(item, partial(self.transport.upload, ref[0], ref[1], chart))

    async def _deliver_file(self, item: outbox.OutboxItem) -> None:
        assert item.incident_id is not None
        ref = await self._ensure_card(item.incident_id)
        if ref is None:  # the incident is gone
            await self._done(item)
            return
        payload = item.payload
        file = ThreadFile(
            filename=str(payload["filename"]),
            title=str(payload.get("title") or payload["filename"]),
            content=str(payload["content"]).encode(),
            comment=str(payload.get("comment") or ""),
        )
        await self._once(item, partial(self.transport.upload, ref[0], ref[1], file))

    async def _deliver_dm(self, item: outbox.OutboxItem) -> None:
        user = str(item.payload["user"])
        channel = self._dm_channels.get(user)
        if channel is None:
            channel = await self.transport.open_dm(user)
            self._dm_channels[user] = channel
        text = item.payload.get("text") or ""
        await self._once(item, partial(self.transport.post, channel, text, None, None))

    async def _deliver_message(self, item: outbox.OutboxItem) -> None:
        payload = item.payload
        post = partial(
            self.transport.post,
            str(payload["channel"]),
            payload.get("text") or "",
            payload.get("blocks"),
            payload.get("thread_ts"),
        )
        await self._once(item, post)

    async def _once(self, item: outbox.OutboxItem, send: Callable[[], Awaitable[Any]]) -> None:
        """`send` (a post, an upload), then the row done; when only the second step failed (the
        store), the next attempt does only that, so Slack never gets the message twice."""
        if item.id not in self._unrecorded:
            await send()
            self._unrecorded[item.id] = None
        await self._done(item)
        self._unrecorded.pop(item.id, None)

    async def _done(self, item: outbox.OutboxItem) -> None:
        await self.writer.run(partial(outbox.mark_done, ids=[item.id]))


async def chart_file(
    charts: ChartDrawer, incident: IncidentOut, readings: list[dict[str, Any]]
) -> ThreadFile | None:
    """The alert's own metric as a PNG, or None when the investigation kept no points of it."""
    generator = next((a.generator_url for a in incident.alerts if a.generator_url), "")
    reading = alert_reading(readings, generator)
    if reading is None or not samples_of(reading):
        return None
    png = await charts.png(reading, incident.started_at)
    name = short_metric(str(reading.get("query", "")), reading.get("series") or {})
    return ThreadFile(
        filename=f"incident-{incident.id}-chart.png",
        title=truncate(name, 200),
        content=png,
        comment=f"Incident #{incident.id}: the alert's metric around its start",
    )


PENDING_GAUGE_TIMEOUT_S = 2.0


async def refresh_pending_gauge(gauge: Gauge, engine: AsyncEngine) -> None:
    """Set `firebreak_slack_outbox_pending` (rows not delivered yet) from the store; call it
    just before rendering /metrics. An unreachable store drops the value and logs why."""
    try:
        async with asyncio.timeout(PENDING_GAUGE_TIMEOUT_S), engine.connect() as conn:
            depth = await outbox.count_pending(conn)
    except Exception as exc:
        gauge.set(float("nan"))
        log.warning("cannot count pending Slack messages for /metrics", error=type(exc).__name__)
        return
    gauge.set(depth)


class NoDelivery:
    """The transport of an outbox that only records (`recording_outbox`): closed at its stop,
    never asked to deliver."""

    async def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"a recording outbox delivers nothing (Transport.{name})")


def recording_outbox(
    engine: AsyncEngine,
    writer: Writer,
    *,
    channel: str,
    public_url: str,
    secrets: WebSecrets,
    routing: Sequence[RouteRule] = (),
    redactor: Redactor | None = None,
) -> OutboxNotifier:
    """An outbox that writes what Slack must be told and delivers nothing itself (never
    started): the drainer of a running `firebreak serve` delivers the rows, looking for rows
    other processes wrote every `OutboxSettings.poll_s`, or the next server to start does.
    The command line's actions tell Slack through it, as the server's own actions do."""
    return OutboxNotifier(
        engine,
        writer,
        NoDelivery(),
        charts=ChartDrawer(),
        ingest_busy=lambda: False,
        channel=channel,
        public_url=public_url,
        secrets=secrets,
        routing=routing,
        redactor=redactor,
    )
