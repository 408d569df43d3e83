"""Investigations the store failed under: held aside, resumed once it takes writes again.

A run cut short by the store (store/health.py's `is_outage`: PostgreSQL restarting or down, a
full disk, no connection to be had; from the graph's own writes or its checkpointer) did
nothing wrong: it is not marked failed. It stays `running` in the store (so a restart, or
another replica once our heartbeat stops, resumes it too) and is held here. Once the store
writer's commits go through again (its health, store/writer.py), each held run is taken again
with one write that counts the resume (`store_retries`) and, the first time, records
`AI_ANALYSIS_RETRIED` on the timeline; then it resumes from its last checkpoint. A run the
store fails under more than STORE_RETRIES times fails for good (`AI_ANALYSIS_FAILED`). Any
other error fails a run at once, as before.

What a drive had left to record when the store went (its final status, its failure) is held
the same way and written as it was once the store is back, without resuming anything; a run
whose very creation failed is created then, and started.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Connection

from firebreak.store import investigations
from firebreak.store.health import describe, is_outage
from firebreak.store.incidents import record_event
from firebreak.store.investigations import Run, RunStatus
from firebreak.store.schemas import EventType
from firebreak.store.writer import Work, Writer

log = structlog.get_logger(__name__)

STORE_RETRIES = 3  # resumes after store failures before a run fails for good
RETRY_AFTER_S = 2.0  # a held run waits at least this long, and for the writer to commit again
FIREBREAK = "firebreak"


@dataclass
class _Held:
    incident_id: int
    error: str  # `Class: first line` of what the store said
    due: float  # time.monotonic() of the next try
    record: Work[Any] | None = None  # what was left to write; None: resume the run
    then_resume: bool = False  # the record creates the run: start it once written


class StoreOutages:
    """The runs and records held until the store is back; `resume` drives a run again."""

    def __init__(
        self,
        writer: Writer,
        resume: Callable[[Run], None],
        *,
        owner: str,
        retries: int = STORE_RETRIES,
        retry_after_s: float = RETRY_AFTER_S,
    ) -> None:
        self._writer = writer
        self._resume = resume
        self._owner = owner
        self._retries = retries
        self._retry_after_s = retry_after_s
        self._held: dict[str, _Held] = {}  # by thread id
        self._task: asyncio.Task[None] | None = None

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def holds(self, incident_id: int) -> bool:
        return any(held.incident_id == incident_id for held in self._held.values())

    def hold(
        self,
        incident_id: int,
        thread_id: str,
        exc: BaseException,
        record: Work[Any] | None = None,
        *,
        then_resume: bool = False,
    ) -> None:
        """Keep the run (or what it had left to `record`) until the store is back."""
        due = time.monotonic() + self._retry_after_s
        self._held[thread_id] = _Held(incident_id, describe(exc), due, record, then_resume)
        log.warning(
            "investigation held until the store is back",
            incident_id=incident_id,
            thread_id=thread_id,
            error=describe(exc),
            left_to_record=record is not None,
        )
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._retry(), name="investigations-after-outage")

    async def close(self) -> None:
        """Stop trying: held runs are still `running` in the store, so the next start (or
        another replica) resumes them."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _retry(self) -> None:
        while self._held:
            await asyncio.sleep(min(self._retry_after_s, 1.0))
            if self._writer.health.failing:
                continue  # the writer's probe says when it commits again
            now = time.monotonic()
            for thread_id, held in list(self._held.items()):
                if held.due <= now:
                    await self._try(thread_id, held)

    async def _try(self, thread_id: str, held: _Held) -> None:
        work = held.record or partial(self._take, thread_id=thread_id, held=held)
        try:
            taken = await self._writer.run(work)
        except Exception as exc:
            if is_outage(exc):
                held.due = time.monotonic() + self._retry_after_s
                return  # still away: nothing was counted
            log.exception("could not take back an investigation", thread_id=thread_id)
            del self._held[thread_id]
            return
        del self._held[thread_id]
        if held.record is not None and held.then_resume:
            self._resume(Run(thread_id, held.incident_id, RunStatus.RUNNING, None))
        elif held.record is None and taken is not None:
            self._resume(taken)

    def _take(self, conn: Connection, thread_id: str, held: _Held) -> Run | None:
        """One more resume of the run, counted; on the timeline the first time; failed for
        good past the bound. The run to resume, or None."""
        taken = investigations.retry_after_outage(conn, thread_id, owner=self._owner)
        if taken is None:
            return None  # finished or gone meanwhile
        run, retries = taken
        if retries > self._retries:
            message = (
                f"Investigation failed: the store failed under it {retries} times "
                f"(last: {held.error})"
            )
            investigations.settle(
                conn,
                thread_id,
                RunStatus.FAILED,
                incident_id=run.incident_id,
                failure=(FIREBREAK, message[:500]),
            )
            return None
        if retries == 1:
            record_event(
                conn,
                run.incident_id,
                EventType.AI_ANALYSIS_RETRIED,
                FIREBREAK,
                f"Investigation resumed from its last checkpoint: the store failed under it "
                f"({held.error})"[:500],
                {"run_id": thread_id, "error": held.error[:500]},
            )
        log.info("resuming an investigation after a store outage", thread_id=thread_id)
        return run
