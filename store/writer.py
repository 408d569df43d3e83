"""Group commit: the process's hot writes share transactions and fsyncs.

Alert ingestion, escalation steps, Slack outbox rows and delivery state, investigation runs
and their timeline events are submitted here as small blocking functions of a `Connection`.
Each caller waits until its work is committed, but work queued meanwhile shares one
transaction and one fsync: the writer takes everything queued, applies it in order and
commits once. The batch runs whole on a blocking engine in one dedicated thread, which also
makes it the only writer of the process:
- through the async drivers every statement cost several hops between threads and event-loop
  turns (about 17 per alert notification, measured), which made ingestion CPU-bound;
- on SQLite, separate transactions wait for its one write lock in a sleeping busy handler
  (naps of 1 to 100 ms), which made the latency tail; one writer per process never waits.

On SQLite the writer also checkpoints the WAL itself, in a thread of its own, instead of
letting the commit that fills it do so: that commit then copied 1000 pages into the database
file and synced it, several times slower than a commit and every half second of a storm, and
every caller in its batch waited for it (README, Development, has the figures).
Those checkpoints run beside the writer, so they never quite catch up while it writes, and
SQLite starts the WAL over only after one has: when it has grown past `wal_limit_frames`, the
writer's own thread copies the little that is left between two transactions.

Work must only touch the database (no side effects): a batch that fails (say a unique-index
race with another replica) is rolled back and retried one item at a time, so one bad item
fails only its own caller. Side effects belong after `run` returns.

A batch that fails because the store itself is away (store/health.py: the server is down or
restarting, the disk is full) fails all its callers at once: each item alone would only fail
the same way, one connection attempt or one full disk after another. The writer then reports
`readiness()` as not ready with the reason, and commits a small probe every `probe_every_s`
until one goes through: ready again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import Connection, Engine, event

from firebreak.store.health import WriteHealth, is_outage, probe

log = structlog.get_logger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")
Work = Callable[[Connection], T]


@dataclass
class _Pending:
    build: Callable[[], Work[Any]]
    done: asyncio.Future[Any]


@dataclass
class _Ready:
    work: Work[Any]
    done: asyncio.Future[Any]


CHECKPOINT_EVERY_S = 0.25  # how often the WAL is copied into an SQLite database file
PROBE_EVERY_S = 1.0  # while writes fail for the store's sake, how often a probe is committed


class Writer:
    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 256,
        wal_limit_frames: int = 10_000,
        checkpoint_every_s: float = CHECKPOINT_EVERY_S,
        probe_every_s: float = PROBE_EVERY_S,
    ) -> None:
        self.engine = engine
        self.health = WriteHealth()
        self._probe_every_s = probe_every_s
        self._probing: asyncio.Task[None] | None = None
        self._max_batch = max_batch
        self._wal_limit_frames = wal_limit_frames  # pages (4 KiB) of WAL before catching up
        self._checkpoint_every_s = checkpoint_every_s
        self._wal_catch_up = False
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._checkpoints: asyncio.Task[None] | None = None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _no_automatic_checkpoints)

    @property
    def running(self) -> bool:
        return self._task is not None

    def readiness(self) -> str:
        """ "ok", or why commits are failing (`/readyz`'s `store` check)."""
        return self.health.readiness()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store-writer")
        if self.engine.dialect.name == "sqlite":
            self._checkpoints = asyncio.create_task(self._checkpoint(), name="wal-checkpoints")

    async def stop(self) -> None:
        """Finish everything already submitted, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None
        for task in (self._probing, self._checkpoints):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        self._thread.shutdown(wait=True)
        self.engine.dispose()  # the last connection closed checkpoints what is left

    async def _checkpoint(self) -> None:
        """PASSIVE: copies what is committed without waiting for (or holding up) the writer
        or readers. A failure is logged and tried again at the next turn."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-checkpoint") as thread:
            while True:
                await asyncio.sleep(self._checkpoint_every_s)
                frames = await self._copy_wal_in(thread)
                if frames is not None:
                    self._wal_catch_up = frames >= self._wal_limit_frames

    async def _copy_wal_in(self, thread: ThreadPoolExecutor) -> int | None:
        """`_copy_wal` in `thread`; None (logged) when it failed. A checkpoint that fails for
        the store's sake (the disk is full: the database file cannot grow by what the WAL
        holds) fails writes too, a little later, once the WAL cannot grow either: it counts
        as a failing write at once."""
        try:
            return await asyncio.get_running_loop().run_in_executor(thread, self._copy_wal)
        except Exception as exc:
            if is_outage(exc):
                self._store_failed(exc)
            else:
                log.warning("WAL checkpoint failed", error=str(exc))
            return None

    def _copy_wal(self) -> int:
        """Checkpoint (PASSIVE); returns how many frames the WAL holds."""
        with self.engine.connect() as conn:
            _busy, frames, _copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            return int(frames)

    async def run(self, work: Work[T]) -> T:
        """Apply `work` in a shared transaction; returns its result once committed."""
        return await self.run_built(lambda: work)

    async def run_built(self, build: Callable[[], Work[T]]) -> T:
        """As `run`, with the work made by `build()` (on the event loop) when its transaction
        starts, so that it takes in whatever its caller collected until then (`Batched`)."""
        if self._task is None:
            raise RuntimeError("the store writer is not running")
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(build, done))
        return await done

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Ready] = []
            item = await self._queue.get()
            while item is not None:
                if (ready := _built(item)) is not None:
                    batch.append(ready)
                if len(batch) >= self._max_batch or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            stopping = item is None
            if batch:
                await self._commit(batch)
            if self._wal_catch_up:
                await self._catch_up_wal()

    async def _catch_up_wal(self) -> None:
        """Between two transactions: with none open, this checkpoint copies all that is left,
        and the next commit starts the WAL over."""
        self._wal_catch_up = False
        await self._copy_wal_in(self._thread)

    async def _commit(self, batch: list[_Ready]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._thread, self._apply, batch)
        except Exception as exc:
            if is_outage(exc):
                self._store_failed(exc)
                for item in batch:
                    _settle(item.done, exception=exc)
                return
            if len(batch) == 1:
                _settle(batch[0].done, exception=exc)
                return
            log.warning("write batch failed, retrying one by one", error=type(exc).__name__)
            for item in batch:
                await self._commit([item])
            return
        for item, result in zip(batch, results, strict=True):
            _settle(item.done, result=result)

    def _apply(self, batch: list[_Ready]) -> list[Any]:
        with self.engine.begin() as conn:
            return [item.work(conn) for item in batch]

    def _store_failed(self, exc: BaseException) -> None:
        """Logged once per outage (each failure updates the reason); probing starts."""
        if not self.health.failing:
            log.warning("store writes failing", error=repr(exc).splitlines()[0][:300])
        self.health.failed(exc)
        if self._probing is None or self._probing.done():
            self._probing = asyncio.create_task(self._probe(), name="store-probe")

    async def _probe(self) -> None:
        """Until a probe commits: then the store takes writes again."""
        while self.health.failing and self._task is not None:
            await asyncio.sleep(self._probe_every_s)
            began = self.health.failing_since
            try:
                await self._probe_once()
            except Exception as exc:
                if is_outage(exc):
                    self.health.failed(exc)
                continue
            self.health.recovered()
            if began is not None:
                seconds = round(time.monotonic() - began, 1)
                log.info("store writes recovered", failing_for_s=seconds)

    async def _probe_once(self) -> None:
        """`probe` committed; on SQLite the WAL then copied into the database file too. A WAL
        that has room left (frames already on disk, reused after a checkpoint) lets a small
        write through on a full disk; the copy needs the file to grow, so it does not."""
        await self.run(probe)
        if self.engine.dialect.name == "sqlite":
            await asyncio.get_running_loop().run_in_executor(self._thread, self._copy_wal)


def _no_automatic_checkpoints(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def _built(pending: _Pending) -> _Ready | None:
    try:
        return _Ready(pending.build(), pending.done)
    except Exception as exc:  # a broken builder fails its own caller, not the writer
        _settle(pending.done, exception=exc)
        return None


class Batched(Generic[Item, T]):
    """Items that arrive while a batch of them is written wait for the next batch, which is
    written as one `Work`: `apply_many(conn, items)` returns one result per item, in order.
    For work that is cheaper set-wise than item by item (ingestion reads and writes a batch of
    notifications in a few statements).

    A batch is queued in the writer as soon as an item waits, but takes its items only when
    its transaction starts: every item that arrived until then, up to `max_batch`. Batches
    formed when queued were uneven during a storm (half of them one notification, the others
    up to 30: a commit and the batch's fixed statements for one item).
    When a batch fails, each of its items is tried alone through `apply_one`, so one bad item
    fails only its own caller, as with `Writer.run`; those retries commit after the batch
    behind it. A batch that failed because the store is away fails all its callers at once.
    """

    def __init__(
        self,
        writer: Writer,
        apply_many: Callable[[Connection, list[Item]], list[T]],
        apply_one: Callable[[Connection, Item], T],
        *,
        max_batch: int = 256,
    ) -> None:
        self.writer = writer
        self._apply_many = apply_many
        self._apply_one = apply_one
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[T]]] = []
        self._queued = False  # a batch waits in the writer's queue and has taken no items yet
        self._writing: set[asyncio.Task[None]] = set()
        self._pending = 0

    def _applying(self, item: Item) -> Callable[[Connection], T]:
        """One item's write on its own, for a batch that failed."""
        return lambda conn: self._apply_one(conn, item)

    @property
    def pending(self) -> int:
        """Items not written yet: waiting for a batch, or in the batch being written."""
        return self._pending

    async def run(self, item: Item) -> T:
        """Apply `item` in the next batch; returns its result once committed."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if not self._queued:
            self._queue_batch()
        self._pending += 1
        try:
            return await done
        finally:
            self._pending -= 1

    def _queue_batch(self) -> None:
        self._queued = True
        task = asyncio.create_task(self._write(), name="batched-writes")
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    def _take(self) -> list[tuple[Item, asyncio.Future[T]]]:
        """The items for a batch whose transaction starts now."""
        self._queued = False
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        if self._waiting:  # more than one batch's worth: the rest go in the next
            self._queue_batch()
        return batch

    async def _write(self) -> None:
        batch: list[tuple[Item, asyncio.Future[T]]] = []

        def build() -> Work[list[T]]:
            batch.extend(self._take())
            items = [item for item, _ in batch]
            return lambda conn: self._apply_many(conn, items)

        try:
            results: list[Any] = await self.writer.run_built(build)
        except Exception as exc:
            if not batch:  # refused before its transaction (the writer is stopped)
                batch.extend(self._take())
            if len(batch) == 1 or is_outage(exc):  # alone, each would fail the same way
                for _, done in batch:
                    _settle(done, exception=exc)
                return
            log.warning("batched write failed, retrying one by one", error=type(exc).__name__)
            results = await asyncio.gather(
                *(self.writer.run(self._applying(item)) for item, _ in batch),
                return_exceptions=True,
            )
        for (_, done), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                _settle(done, exception=result)
            else:
                _settle(done, result=result)


def _settle(
    done: asyncio.Future[Any], *, result: Any = None, exception: BaseException | None = None
) -> None:
    if done.done():  # the caller was cancelled meanwhile; the work is committed anyway
        return
    if exception is not None:
        done.set_exception(exception)
    else:
        done.set_result(result)
