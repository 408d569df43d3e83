"""APScheduler 3 set-up: persistent, exactly-once deadlines that survive restarts.

The scheduler knows no domain. Each domain registers a `JobKind` (escalation steps, reminders,
remediation runs): its name, the coroutine that fires one item, and the reader of its pending
rows. The rows say what is due and when; APScheduler's `SQLAlchemyJobStore` (in the same
PostgreSQL database, or in `<db>.jobs` beside a SQLite file) holds the DateTrigger jobs that
fire them. A job id names the row AND its exactly-once token (`kind:key:token`), so a job made
for a step that has since moved on is recognisably stale: the domain re-checks the token in a
conditional UPDATE and does nothing.

Kinds with `tick_s` come by the thousand, so they share jobs: one per tick in which an item
falls (`esc:<tick>:0`), which fires every item due by then. APScheduler removes every job it
fires with a commit of its own, in the event loop, so one job per item would bound the rate
at which items fire.

Jobs are written with `add_job(..., jobstore=PERSISTENT, replace_existing=True)` and read and
removed with `get_jobs` / `remove_job`. `reconcile` makes the job store match the rows:
missing or mistimed jobs are added, stale ones removed. It runs at start and every
`sweep_interval_s`. Every job has `misfire_grace_time=None` and `coalesce=True`: a job due
while the process was down fires once, late, instead of being dropped.

Persistent jobs name the module-level coroutine `due`, which does nothing: the scheduler's
`EVENT_JOB_SUBMITTED` listener hands `(kind, key, token)`, read from the job id, to the
registered kind. Nothing process-specific is pickled and there is no module-level registry.

Several replicas: only the process holding the scheduler lock (scheduler/election.py) runs the
persistent job store. Every process runs an in-memory AsyncIOScheduler for its sweep, which
retries the lock; a follower still does its own immediate steps by writing the rows, and the
leader picks up their later deadlines at its next sweep. Exactly-once never depends on the
election: it is the domains' conditional UPDATEs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import structlog
from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url

from firebreak.scheduler.election import leader_lock
from firebreak.store.db import create_sync_engine, is_memory_sqlite
from firebreak.store.health import describe, is_outage

log = structlog.get_logger(__name__)

PERSISTENT = "persistent"  # alias of the SQLAlchemy job store (only on the elected scheduler)
DUE_EXECUTOR = "due"  # alias of the executor of persistent jobs (named in their stored rows)
JOB_OPTIONS: dict[str, Any] = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
TIME_SLACK_S = 0.5  # a stored job this close to the wanted time is left alone
# Items of `limited` kinds running at once per process: they commit together through the store
# writer, so this bounds a batch (the writer's maximum).
STEP_CONCURRENCY = 256


@dataclass(frozen=True)
class Due:
    """Something the scheduler must fire: the kind, the row id, its exactly-once token."""

    kind: str
    key: int
    token: int
    at: datetime

    @property
    def job_id(self) -> str:
        return f"{self.kind}:{self.key}:{self.token}"


@dataclass(frozen=True)
class JobKind:
    """A domain's deadlines. `fire(key, token)` does one item; `pending(conn)` lists every item
    the rows say is due some time (for reconciliation, in a worker thread); `tick_s` batches
    items onto shared tick jobs, and `fire` then gets the tick and 0; `limited` items wait for
    one of `STEP_CONCURRENCY` slots."""

    kind: str
    fire: Callable[[int, int], Coroutine[Any, Any, Any]]
    pending: Callable[[Connection], list[Due]]
    tick_s: float | None = None
    limited: bool = False

    def job_for(self, due: Due) -> Due:
        """The job that fires `due`: itself, or the first tick at or after it (never early)."""
        if self.tick_s is None:
            return due
        tick = math.ceil(due.at.timestamp() / self.tick_s - 1e-9)
        return Due(self.kind, tick, 0, datetime.fromtimestamp(tick * self.tick_s, UTC))


@dataclass(frozen=True)
class CatchUp:
    """Reconciliation's second duty: rows whose start was lost (a crash between commit and the
    event), read by `find` in a worker thread and handed to `act` one by one."""

    find: Callable[[Connection], list[int]]
    act: Callable[[int], Coroutine[Any, Any, Any]]


class Scheduling(Protocol):
    """What a domain needs of the scheduler: its deadlines written, its work tracked."""

    @property
    def is_leader(self) -> bool: ...

    def schedule(self, due: Due) -> None: ...

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None: ...


async def due(kind: str, key: int, token: int) -> None:
    """The coroutine every persistent job names, and it does nothing: a pickled job must name
    a module-level callable, and the work belongs to the scheduler that registered the kind.
    That scheduler's `EVENT_JOB_SUBMITTED` listener hands the job to the kind."""


def parse_job_id(job_id: str) -> tuple[str, int, int] | None:
    """`(kind, key, token)` from a persistent job's id (`Due.job_id`), or None for another id."""
    kind, _, rest = job_id.partition(":")
    key, _, token = rest.partition(":")
    if not (kind and key.lstrip("-").isdigit() and token.lstrip("-").isdigit()):
        return None
    return kind, int(key), int(token)


def jobstore_url(url: str) -> str:
    """Where APScheduler's jobs live (an async-driver URL; `create_sync_engine` makes it sync).

    PostgreSQL: the same database. SQLite: a sibling file `<db>.jobs`. APScheduler reads and
    writes its job store with blocking calls from inside the event loop; on the same SQLite
    file such a call can wait for the write lock held by an async transaction that itself
    needs the (now blocked) loop to finish: a deadlock until busy_timeout. A separate file
    cannot contend with the app's transactions; the rows stay the source of truth either way.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return url
    if is_memory_sqlite(url):
        return parsed.set(database=":memory:").render_as_string(hide_password=False)
    return parsed.set(database=(parsed.database or "") + ".jobs").render_as_string(
        hide_password=False
    )


@dataclass
class ReconcileReport:
    wanted: int = 0
    written: int = 0
    deleted: int = 0
    caught_up: int = 0
    seconds: float = 0.0


class JobScheduler:
    """The AsyncIOScheduler, the election, reconciliation and the registered kinds."""

    def __init__(self, store_url: str, *, sweep_interval_s: float) -> None:
        self.url = store_url
        self.sweep_interval_s = sweep_interval_s
        self.scheduler = AsyncIOScheduler(
            timezone=UTC, job_defaults=JOB_OPTIONS, executors={DUE_EXECUTOR: AsyncIOExecutor()}
        )
        self.scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        self.engine: Engine = create_sync_engine(store_url)  # reconciliation reads
        self.jobstore: SQLAlchemyJobStore | None = None
        self.lock = leader_lock(store_url)
        self.kinds: dict[str, JobKind] = {}
        self.catch_ups: list[CatchUp] = []
        self._every: list[Callable[[], Any]] = []  # interval jobs to add at start
        self.is_leader = False
        self.stopped = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweep_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(STEP_CONCURRENCY)
        self._to_write: dict[str, Due] = {}  # jobs to write at the end of this loop turn
        self._writing = False
        self._jobs_lock = asyncio.Lock()  # one writer of the job store at a time
        self.last_reconcile: ReconcileReport | None = None

    # ------------------------------------------------------------------ registration

    def register(self, kind: JobKind) -> None:
        if kind.kind in self.kinds:
            raise ValueError(f"job kind {kind.kind!r} is registered twice")
        self.kinds[kind.kind] = kind

    def register_catch_up(self, catch_up: CatchUp) -> None:
        self.catch_ups.append(catch_up)

    def every(
        self,
        name: str,
        interval_s: float,
        work: Callable[[], Awaitable[Any]],
        *,
        first_at: datetime | None = None,
    ) -> None:
        """Run `work` every `interval_s` (first at `first_at`, default one interval after
        start) on the elected scheduler only: on every other replica the job fires and does
        nothing. An in-memory job (nothing to pickle, nothing to reconcile); a failure is
        logged and the next run comes as planned."""

        async def run() -> None:
            if self.stopped or not self.is_leader:
                return
            try:
                await work()
            except Exception:
                log.exception("interval job failed", job=name)

        when = {"next_run_time": first_at} if first_at is not None else {}
        job = partial(
            self.scheduler.add_job,
            run,
            "interval",
            seconds=interval_s,
            id=f"every:{name}",
            **when,
            **JOB_OPTIONS,
        )
        if self.scheduler.running:
            job()
        else:  # added by `start`, once the election is decided: a first run due at start
            self._every.append(job)  # must not find the scheduler still a follower

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Start in the running loop, try to become the elected scheduler, reconcile."""
        self._loop = asyncio.get_running_loop()
        self.scheduler.start()
        await self.sweep()
        self.scheduler.add_job(
            self.sweep,
            "interval",
            seconds=self.sweep_interval_s,
            id="firebreak-sweep",
            **JOB_OPTIONS,
        )
        for add in self._every:
            add()
        self._every.clear()

    async def stop(self, grace_s: float = 5.0) -> None:
        self.stopped = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)
        self._demote()
        await asyncio.to_thread(self.lock.release)
        self.engine.dispose()

    def readiness(self) -> str:
        if self.stopped or not self.scheduler.running:
            return "not running"
        return "ok"

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run domain work in the background, tracked so shutdown can wait for it."""
        if self.stopped:
            work.close()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called from a worker thread: hop into the loop
            self._loop.call_soon_threadsafe(self.spawn, work)
            return
        task = loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _submitted(self, event: JobSubmissionEvent) -> None:
        """APScheduler submitted a job: a persistent one goes to its kind."""
        if event.jobstore != PERSISTENT:
            return
        parsed = parse_job_id(event.job_id)
        if parsed is None:
            log.warning("persistent job with an unknown id", job_id=event.job_id)
            return
        self._dispatch(*parsed)

    def _dispatch(self, kind: str, key: int, token: int) -> None:
        registered = self.kinds.get(kind)
        if registered is None:
            log.warning("job of an unknown kind", kind=kind, key=key)
            return
        work = registered.fire(key, token)
        self.spawn(self._limited(work) if registered.limited else work)

    async def _limited(self, work: Awaitable[Any]) -> Any:
        async with self._slots:
            return await work

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scheduled work failed", exc_info=task.exception())

    # ------------------------------------------------------------------ election

    async def sweep(self) -> None:
        """Keep (or try to take) the scheduler lock; when elected, reconcile."""
        if self.stopped:
            return
        async with self._sweep_lock:
            try:
                if self.is_leader and not await asyncio.to_thread(self.lock.alive):
                    self._demote()
                if not self.is_leader and await asyncio.to_thread(self.lock.acquire):
                    self._promote()
                if self.is_leader:
                    await self.reconcile()
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("scheduler sweep failed")
                else:  # the store is away: one line, the next sweep tries again
                    log.warning("scheduler sweep failed: store unavailable", error=describe(exc))

    def _promote(self) -> None:
        engine = create_sync_engine(jobstore_url(self.url), durable=False)
        self.jobstore = SQLAlchemyJobStore(engine=engine)
        self.scheduler.add_jobstore(self.jobstore, PERSISTENT)
        self.is_leader = True
        log.info("elected as the scheduler for this store")

    def _demote(self) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            self.scheduler.remove_jobstore(PERSISTENT, shutdown=True)
        except KeyError:
            pass
        self.jobstore = None
        log.info("no longer the elected scheduler")

    # ------------------------------------------------------------------ scheduling

    def schedule(self, due: Due) -> None:
        """Write the job for `due` (leader only; followers leave it to the leader's sweep).

        Jobs scheduled in the same loop turn (a batch of steps that just fired) are written
        together in a worker thread, with job processing paused meanwhile: each `add_job` on a
        running scheduler wakes it up, which reads the job store in the event loop."""
        if not self.is_leader or self.stopped:
            return
        due = self.kinds[due.kind].job_for(due)
        self._to_write[due.job_id] = due
        if not self._writing:
            self._writing = True
            self.spawn(self._write_scheduled())

    async def _write_scheduled(self) -> None:
        try:
            while self._to_write and self.is_leader:
                dues, self._to_write = list(self._to_write.values()), {}
                async with self._jobs_lock:
                    await self._batch(self._add_jobs, dues)
        finally:
            self._writing = False

    async def _batch(self, work: Callable[..., Any], *args: Any) -> Any:
        """Run blocking job-store `work` in a worker thread with job processing paused, then
        wake the scheduler once."""
        running = self.scheduler.state == STATE_RUNNING
        if running:
            self.scheduler.pause()
        try:
            return await asyncio.to_thread(work, *args)
        finally:
            if running and self.scheduler.state == STATE_PAUSED:
                self.scheduler.resume()

    def _add_jobs(self, dues: list[Due]) -> None:
        for item in dues:
            self.scheduler.add_job(
                due,
                DateTrigger(run_date=item.at, timezone=UTC),
                args=(item.kind, item.key, item.token),
                id=item.job_id,
                name=item.job_id,
                jobstore=PERSISTENT,
                executor=DUE_EXECUTOR,
                replace_existing=True,
                **JOB_OPTIONS,
            )

    def _remove_jobs(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            try:
                self.scheduler.remove_job(job_id, PERSISTENT)
            except JobLookupError:  # fired meanwhile
                pass

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self) -> ReconcileReport:
        """Make the persistent job store match the rows; catch up on lost starts.

        Holds the job-store lock throughout: a job that `schedule` writes meanwhile (a tick
        job's id can come back) is written after the stale one is removed, never before."""
        if not self.is_leader:
            return ReconcileReport()
        async with self._jobs_lock:
            report, caught = await self._batch(self._reconcile_blocking)
        self.last_reconcile = report
        if report.written or report.deleted:
            log.info(
                "scheduler reconciled",
                wanted=report.wanted,
                written=report.written,
                deleted=report.deleted,
                seconds=round(report.seconds, 3),
            )
        for catch_up, key in caught:
            self.spawn(catch_up.act(key))
        return report

    def _reconcile_blocking(self) -> tuple[ReconcileReport, list[tuple[CatchUp, int]]]:
        began = time.perf_counter()
        # The jobs first, then the rows: a job written meanwhile reflects a row state at least
        # as new as what we read, so it is never removed by mistake.
        existing = {
            job.id: job.next_run_time
            for job in self.scheduler.get_jobs(jobstore=PERSISTENT)
            if job.id.split(":", 1)[0] in self.kinds
        }
        with self.engine.connect() as rows:
            wanted = {
                job.job_id: job
                for kind in self.kinds.values()
                for job in map(kind.job_for, kind.pending(rows))
            }
            caught = [(c, key) for c in self.catch_ups for key in c.find(rows)]
        stale = [job_id for job_id in existing if job_id not in wanted]
        write = [
            due
            for job_id, due in wanted.items()
            if job_id not in existing
            or existing[job_id] is None
            or abs((existing[job_id] - due.at).total_seconds()) > TIME_SLACK_S
        ]
        self._remove_jobs(stale)
        self._add_jobs(write)
        report = ReconcileReport(
            wanted=len(wanted),
            written=len(write),
            deleted=len(stale),
            caught_up=len(caught),
            seconds=time.perf_counter() - began,
        )
        return report, caught
