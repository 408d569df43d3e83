"""APScheduler 3 set-up: escalation steps, reminders and remediation runs as persistent jobs.

Sources of truth and jobs
    The store's rows (`escalations`, `incident_reminders`, `remediation_runs`) say what is due
    and when; APScheduler's `SQLAlchemyJobStore` (table `apscheduler_jobs`; sync URL derived
    from `store.url`: the same PostgreSQL database, or `<db>.jobs` beside a SQLite file, see
    `jobstore_url`) holds the DateTrigger jobs that fire them. A reminder's or remediation
    run's job id names the row AND its exactly-once token (`rmd:<incident>:<sent>`,
    `rem:<run>:<step>`), so a job made for a step that has since moved on is recognisably stale
    and does nothing when it fires (the flows re-check the token in a conditional UPDATE).
    Ladder steps come by the thousand, so they share jobs: one per `TICK_S` tick in which a
    step falls (`esc:<tick>:0`), which fires every step due by then; each step still claims
    its own token. APScheduler commits the removal of every job it fires, in the event loop:
    one job per step capped firing at about 600 steps/s on SQLite and 400 on PostgreSQL.
    `reconcile` makes the job store match the rows: missing or mistimed jobs are written, stale
    ones deleted, in one transaction with a bulk INSERT (10,000 jobs without a round trip
    each). It runs at start and every `escalation.sweep_interval_s`. Every job has
    `misfire_grace_time=None` and `coalesce=True`: a job due while the process was down fires
    once, late, instead of being dropped after APScheduler's default grace of 1 s.

How jobs reach the app
    Jobs are module-level coroutine functions whose arguments are only the store key (a hash
    of the database URL, stable across restarts) and the ids above, so they pickle. They look
    up the running `JobScheduler` in `_ACTIVE`, the one module-level registry, filled when a
    scheduler becomes the elected one for that database and emptied when it stops. Chosen over
    pickling a reference to the Runtime: nothing process-specific ends up in the database, and
    a job that fires in a process without a live scheduler for its database just logs.

Several replicas
    One job store must never be shared by two schedulers, so only one process per database
    runs the persistent job store: the one holding the scheduler lock (PostgreSQL: a
    session-level `pg_try_advisory_lock` on a dedicated connection, released by the server
    when the process dies; SQLite: an `flock` on `<db>.scheduler-lock`). Every process runs an
    AsyncIOScheduler with an in-memory store for its sweep, which retries the lock; a follower
    still handles its own events and button clicks (starts ladders, escalates, schedules
    remediations) by writing the rows and doing the immediate step itself. The leader picks
    up the rows' later deadlines at its next sweep. Exactly-once never depends on the
    election: it is the conditional UPDATE in the flows, which also holds when a deposed
    leader and a new one briefly overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import math
import os
import pickle
import time
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Connection, Engine, delete, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from firebreak.app import Runtime
from firebreak.escalation import EscalationService
from firebreak.remediation import RemediationService
from firebreak.store import escalations as store
from firebreak.store.db import conflict_insert, create_sync_engine, ensure_wal, sync_url

log = structlog.get_logger(__name__)

JOB_TABLE = "apscheduler_jobs"
PERSISTENT = "persistent"  # alias of the SQLAlchemy job store (only on the elected scheduler)
LOCK_KEY = int.from_bytes(hashlib.sha256(b"firebreak.scheduler").digest()[:8], "big", signed=True)
JOB_OPTIONS: dict[str, Any] = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
TIME_SLACK_S = 0.5  # a stored job this close to the wanted time is left alone
TICK_S = 0.1  # ladder steps fire on these ticks: at most this late, one job per tick
_CHUNK = 500
# Reminders running at once per process (ladder steps are batched by `fire_due`): they commit
# together through the store writer, so this bounds a batch (the writer's maximum).
STEP_CONCURRENCY = 256

_ACTIVE: dict[str, JobScheduler] = {}  # store key -> the elected scheduler in this process


def ladder_tick(due: store.Due) -> store.Due:
    """The tick job that fires a ladder step: the first `TICK_S` boundary at or after it is
    due (never early). Steps due within one tick share it; the job fires them all."""
    tick = math.ceil(due.at.timestamp() / TICK_S - 1e-9)
    return store.Due("esc", tick, 0, datetime.fromtimestamp(tick * TICK_S, UTC))


def store_key(url: str) -> str:
    """A stable name for the database (no password): what jobs use to find their scheduler."""
    safe = make_url(sync_url(url)).render_as_string(hide_password=True)
    return hashlib.sha256(safe.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------- the jobs


def _active(key: str) -> JobScheduler | None:
    scheduler = _ACTIVE.get(key)
    if scheduler is None:
        log.warning("job fired without a running scheduler for its store", store_key=key)
    return scheduler


async def escalation_job(key: str, tick: int, _token: int) -> None:
    if (scheduler := _active(key)) is not None:
        scheduler.spawn(scheduler.escalations.fire_due())


async def reminder_job(key: str, incident_id: int, sent: int) -> None:
    if (scheduler := _active(key)) is not None:
        scheduler.spawn(scheduler.limited(scheduler.escalations.fire_reminder(incident_id, sent)))


async def remediation_job(key: str, run_id: int, step: int) -> None:
    if (scheduler := _active(key)) is not None:
        scheduler.spawn(scheduler.remediations.run_job(run_id, step))


JOB_FUNCS = {"esc": escalation_job, "rmd": reminder_job, "rem": remediation_job}


# ---------------------------------------------------------------------- leader locks


class _Lock:
    def acquire(self) -> bool:
        raise NotImplementedError

    def alive(self) -> bool:
        return True

    def release(self) -> None:
        return None


class _NoLock(_Lock):
    """In-memory SQLite: one process by definition."""

    def acquire(self) -> bool:
        return True


class _FileLock(_Lock):
    """SQLite: an flock beside the database file; the kernel drops it when the process dies."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class _AdvisoryLock(_Lock):
    """PostgreSQL: a session advisory lock on a connection kept for the purpose."""

    def __init__(self, url: str) -> None:
        self.engine = create_sync_engine_nullpool(url)
        self.conn: Any = None

    def acquire(self) -> bool:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}))
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self.conn = conn
        return True

    def alive(self) -> bool:
        try:
            self.conn.execute(text("SELECT 1"))
            return True
        except Exception:
            log.warning("scheduler lock connection lost")
            return False

    def release(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
        self.engine.dispose()


def create_sync_engine_nullpool(url: str) -> Engine:
    from sqlalchemy import create_engine

    return create_engine(sync_url(url), poolclass=NullPool)


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
    database = parsed.database or ""
    if database in {"", ":memory:"} or database.startswith("file::memory:"):
        return parsed.set(database=":memory:").render_as_string(hide_password=False)
    return parsed.set(database=database + ".jobs").render_as_string(hide_password=False)


def _jobstore_engine(url: str) -> Engine:
    """The job store's engine. Its commits do not wait for the disk: the jobs are derived from
    the rows (which do) and rebuilt by reconcile, while APScheduler deletes every job it fires
    with a commit of its own, in the event loop. Waiting for an fsync there capped firing at
    about 400 jobs/s on PostgreSQL (measured). SQLite: its own file, WAL, synchronous=NORMAL;
    PostgreSQL: the same database, `synchronous_commit=off` on the job store's sessions only."""
    from sqlalchemy import create_engine

    target = jobstore_url(url)
    if make_url(target).get_backend_name() != "sqlite":
        return create_engine(
            sync_url(target),
            pool_pre_ping=True,
            connect_args={"options": "-c synchronous_commit=off"},
        )
    engine = create_engine(sync_url(target), connect_args={"timeout": 30})
    event.listen(engine, "connect", _jobstore_pragmas)
    return engine


def _jobstore_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    ensure_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _leader_lock(url: str) -> _Lock:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return _AdvisoryLock(url)
    database = parsed.database or ""
    if database in {"", ":memory:"} or database.startswith("file::memory:"):
        return _NoLock()
    return _FileLock(os.path.abspath(database) + ".scheduler-lock")


# ---------------------------------------------------------------------- the scheduler


@dataclass
class ReconcileReport:
    wanted: int = 0
    written: int = 0
    deleted: int = 0
    unstarted: list[int] = field(default_factory=list)
    seconds: float = 0.0


class JobScheduler:
    """One per Runtime: the AsyncIOScheduler, the election, reconciliation and the services."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.url = runtime.config.store.url
        self.key = store_key(self.url)
        self.scheduler = AsyncIOScheduler(timezone=UTC, job_defaults=JOB_OPTIONS)
        self.engine = create_sync_engine(self.url)  # reconciliation reads
        self.jobstore: SQLAlchemyJobStore | None = None
        self.lock = _leader_lock(self.url)
        self.escalations = EscalationService(runtime, self)
        self.remediations = RemediationService(runtime, self)
        self.is_leader = False
        self.stopped = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweep_lock = asyncio.Lock()
        # Steps due together (a backlog after an outage) queue here; remediation runs (long,
        # rare) do not take these slots.
        self._slots = asyncio.Semaphore(STEP_CONCURRENCY)
        self._to_write: dict[str, store.Due] = {}  # jobs to write at the end of this loop turn
        self._writing = False
        self.last_reconcile: ReconcileReport | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Start in the running loop, try to become the elected scheduler, reconcile."""
        self._loop = asyncio.get_running_loop()
        self.scheduler.start()
        await self.sweep()
        self.scheduler.add_job(
            self.sweep,
            "interval",
            seconds=self.runtime.config.escalation.sweep_interval_s,
            id="firebreak-sweep",
            **JOB_OPTIONS,
        )

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
        """Run flow work in the background, tracked so shutdown can wait for it."""
        if self.stopped:
            work.close()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # published from a worker thread: hop into the loop
            self._loop.call_soon_threadsafe(self.spawn, work)
            return
        task = loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def limited(self, work: Coroutine[Any, Any, Any]) -> Any:
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
            except Exception:
                log.exception("scheduler sweep failed")

    def _promote(self) -> None:
        other = _ACTIVE.get(self.key)
        if other is not None and other is not self:
            raise RuntimeError("two elected schedulers for one store in one process")
        self.jobstore = SQLAlchemyJobStore(engine=_jobstore_engine(self.url), tablename=JOB_TABLE)
        self.scheduler.add_jobstore(self.jobstore, PERSISTENT)
        _ACTIVE[self.key] = self
        self.is_leader = True
        log.info("elected as the scheduler for this store", store_key=self.key)

    def _demote(self) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        if _ACTIVE.get(self.key) is self:
            del _ACTIVE[self.key]
        with contextlib.suppress(KeyError):
            self.scheduler.remove_jobstore(PERSISTENT, shutdown=True)
        self.jobstore = None
        log.info("no longer the elected scheduler", store_key=self.key)

    # ------------------------------------------------------------------ scheduling

    def schedule(self, due: store.Due) -> None:
        """Write the job for `due` (leader only; followers leave it to the leader's sweep).

        Jobs scheduled in the same loop turn (a batch of steps that just fired) are written
        together: one transaction in a worker thread, then one wake-up of APScheduler, instead
        of an `add_job` each (a blocking INSERT and a full wake-up of the scheduler per job)."""
        if not self.is_leader or self.stopped:
            return
        if due.kind == "esc":
            due = ladder_tick(due)
        self._to_write[due.job_id] = due
        if not self._writing:
            self._writing = True
            self.spawn(self._write_scheduled())

    async def _write_scheduled(self) -> None:
        try:
            while self._to_write and self.jobstore is not None:
                dues, self._to_write = list(self._to_write.values()), {}
                await asyncio.to_thread(self._write_jobs_blocking, self.jobstore, dues)
                self.scheduler.wakeup()
        finally:
            self._writing = False

    def _write_jobs_blocking(self, jobstore: SQLAlchemyJobStore, dues: list[store.Due]) -> None:
        with jobstore.engine.begin() as conn:
            self._write_jobs(conn, jobstore, dues, replace=[due.job_id for due in dues])

    def _write_jobs(
        self,
        conn: Connection,
        jobstore: SQLAlchemyJobStore,
        dues: list[store.Due],
        *,
        replace: list[str],
    ) -> None:
        """Delete the jobs `replace` names, then insert the jobs for `dues`, in bulk."""
        jobs = jobstore.jobs_t
        for i in range(0, len(replace), _CHUNK):
            conn.execute(delete(jobs).where(jobs.c.id.in_(replace[i : i + _CHUNK])))
        if dues:
            conn.execute(
                conflict_insert(conn, jobs).on_conflict_do_nothing(index_elements=["id"]),
                [self._job_row(due, jobstore) for due in dues],
            )

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self) -> ReconcileReport:
        """Make the persistent job store match the rows; start ladders whose OPENED was lost."""
        report = await asyncio.to_thread(self._reconcile_blocking)
        self.last_reconcile = report
        if report.written or report.deleted:
            log.info(
                "scheduler reconciled",
                wanted=report.wanted,
                written=report.written,
                deleted=report.deleted,
                seconds=round(report.seconds, 3),
            )
            self.scheduler.wakeup()
        for incident_id in report.unstarted:
            self.spawn(self.escalations.start(incident_id))
        return report

    def _reconcile_blocking(self) -> ReconcileReport:
        began = time.perf_counter()
        jobstore = self.jobstore
        if jobstore is None:
            return ReconcileReport()
        jobs = jobstore.jobs_t
        interval = self.runtime.config.escalation.reminder_interval_s
        with jobstore.engine.begin() as conn:
            # The jobs first, then the rows: a job the loop writes meanwhile reflects a row
            # state at least as new as what we read, so it is never deleted by mistake.
            existing = {
                row.id: row.next_run_time
                for row in conn.execute(select(jobs.c.id, jobs.c.next_run_time))
                if row.id.split(":", 1)[0] in JOB_FUNCS
            }
            with self.engine.connect() as rows:
                wanted = {
                    due.job_id: due
                    for due in (
                        *map(ladder_tick, store.pending_ladders_sync(rows)),
                        *store.pending_reminders_sync(rows, interval),
                        *store.pending_runs_sync(rows),
                    )
                }
                unstarted = store.unstarted_incidents_sync(rows)
            stale = [job_id for job_id in existing if job_id not in wanted]
            write = [
                due
                for job_id, due in wanted.items()
                if job_id not in existing
                or existing[job_id] is None
                or abs(existing[job_id] - due.at.timestamp()) > TIME_SLACK_S
            ]
            drop = stale + [due.job_id for due in write if due.job_id in existing]
            self._write_jobs(conn, jobstore, write, replace=drop)
        return ReconcileReport(
            wanted=len(wanted),
            written=len(write),
            deleted=len(stale),
            unstarted=unstarted,
            seconds=time.perf_counter() - began,
        )

    def _job_row(self, due: store.Due, jobstore: SQLAlchemyJobStore) -> dict[str, Any]:
        """The row APScheduler itself would write for this job (same pickled state)."""
        job = Job(
            self.scheduler,
            id=due.job_id,
            func=JOB_FUNCS[due.kind],
            trigger=DateTrigger(run_date=due.at, timezone=UTC),
            executor="default",
            args=(self.key, due.key, due.token),
            kwargs={},
            name=due.job_id,
            next_run_time=due.at,
            **JOB_OPTIONS,
        )
        return {
            "id": due.job_id,
            "next_run_time": due.at.timestamp(),
            "job_state": pickle.dumps(job.__getstate__(), jobstore.pickle_protocol),
        }


# ---------------------------------------------------------------------- the component


async def start_scheduler(runtime: Runtime, stack: AsyncExitStack) -> None:
    """Component: start the scheduler in the loop, reconcile, expose the services, subscribe
    to incident events, report readiness and stop on shutdown."""
    scheduler = JobScheduler(runtime)
    runtime.escalations = scheduler.escalations
    runtime.remediations = scheduler.remediations
    await scheduler.start()
    stack.push_async_callback(scheduler.stop)

    def on_event(event: Any) -> None:
        if not scheduler.stopped:
            scheduler.escalations.on_event(event)

    runtime.bus.subscribe(on_event)
    runtime.readiness_checks["scheduler"] = scheduler.readiness
