"""Group commit for alert ingestion.

Each webhook request waits until its notification is committed, but concurrent requests share
one transaction and one fsync: the writer takes everything queued, applies it in order and
commits once. The batch runs whole on a blocking engine in one dedicated thread: through the
async drivers every statement cost several hops between threads and event-loop turns (about
17 per notification, measured), which made ingestion CPU-bound on the event loop.

A batch that fails (say a unique-index race with another replica) is retried one notification
at a time, so one bad notification never fails its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import Engine

from firebreak.store.ingest import IngestOutcome, ingest
from firebreak.store.payloads import AlertmanagerPayload

log = structlog.get_logger(__name__)

AfterCommit = Callable[[IngestOutcome], None]


@dataclass
class _Pending:
    payload: AlertmanagerPayload
    done: asyncio.Future[IngestOutcome]


class IngestWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        reopen_window_s: int,
        after_commit: AfterCommit | None = None,
        max_batch: int = 256,
    ) -> None:
        self._engine = engine
        self._reopen_window_s = reopen_window_s
        self._after_commit = after_commit
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-writer")

    async def stop(self) -> None:
        """Finish everything already submitted, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None
        self._thread.shutdown(wait=True)

    async def submit(self, payload: AlertmanagerPayload) -> IngestOutcome:
        """Returns once the notification is durably stored."""
        if self._task is None:
            raise RuntimeError("ingest writer is not running")
        done: asyncio.Future[IngestOutcome] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(payload, done))
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
        try:
            outcomes = await self._apply([item.payload for item in batch])
        except Exception as exc:  # e.g. a unique-index race with another replica
            log.warning(
                "ingest batch failed, retrying one by one",
                error=type(exc).__name__,
                size=len(batch),
            )
            for item in batch:
                await self._commit_one(item)
            return
        for item, outcome in zip(batch, outcomes, strict=True):
            self._resolve(item, outcome)

    async def _commit_one(self, item: _Pending) -> None:
        try:
            (outcome,) = await self._apply([item.payload])
        except Exception as exc:  # reported to that request only
            if not item.done.done():
                item.done.set_exception(exc)
            return
        self._resolve(item, outcome)

    async def _apply(self, payloads: list[AlertmanagerPayload]) -> list[IngestOutcome]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._apply_blocking, payloads)

    def _apply_blocking(self, payloads: list[AlertmanagerPayload]) -> list[IngestOutcome]:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            return [
                ingest(conn, p, now=now, reopen_window_s=self._reopen_window_s) for p in payloads
            ]

    def _resolve(self, item: _Pending, outcome: IngestOutcome) -> None:
        if not item.done.done():  # the request may have been cancelled meanwhile
            item.done.set_result(outcome)
        if self._after_commit is not None and outcome.incident_id is not None:
            try:
                self._after_commit(outcome)
            except Exception:
                log.exception("after-commit hook failed", incident_id=outcome.incident_id)
