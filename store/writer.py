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

Work must only touch the database (no side effects): a batch that fails (say a unique-index
race with another replica) is rolled back and retried one item at a time, so one bad item
fails only its own caller. Side effects belong after `run` returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine

log = structlog.get_logger(__name__)

T = TypeVar("T")
Work = Callable[[Connection], T]


@dataclass
class _Pending:
    work: Work[Any]
    done: asyncio.Future[Any]


class Writer:
    def __init__(self, engine: Engine, *, max_batch: int = 256) -> None:
        self.engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")

    @property
    def running(self) -> bool:
        return self._task is not None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store-writer")

    async def stop(self) -> None:
        """Finish everything already submitted, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None
        self._thread.shutdown(wait=True)
        self.engine.dispose()

    async def run(self, work: Work[T]) -> T:
        """Apply `work` in a shared transaction; returns its result once committed."""
        if self._task is None:
            raise RuntimeError("the store writer is not running")
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(work, done))
        return await done

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Pending] = []
            item = await self._queue.get()
            while item is not None:
                batch.append(item)
                if len(batch) >= self._max_batch or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            stopping = item is None
            if batch:
                await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._thread, self._apply, batch)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0], exception=exc)
                return
            log.warning("write batch failed, retrying one by one", error=type(exc).__name__)
            for item in batch:
                await self._commit([item])
            return
        for item, result in zip(batch, results, strict=True):
            _settle(item, result=result)

    def _apply(self, batch: list[_Pending]) -> list[Any]:
        with self.engine.begin() as conn:
            return [item.work(conn) for item in batch]


def _settle(item: _Pending, *, result: Any = None, exception: BaseException | None = None) -> None:
    if item.done.done():  # the caller was cancelled meanwhile; the work is committed anyway
        return
    if exception is not None:
        item.done.set_exception(exception)
    else:
        item.done.set_result(result)
