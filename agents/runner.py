"""Runs investigations in the background: bounded, checkpointed, resumed after a crash.

- `request()` never waits: it records the run and starts a task; at most
  `investigation.max_concurrent` graphs run at once, the rest queue on a semaphore. While
  ingestion is busy (an alert storm), graphs start one at a time.
- Every run is a LangGraph thread checkpointed after each step (`durability="sync"`) with the
  SQLite saver (a file beside the SQLite store) or the PostgreSQL saver (the store's database).
  Runs still `running` whose owner died were cut short: they resume from their last
  checkpoint (or start over if they never reached one). Each run is owned by one process,
  which heartbeats every HEARTBEAT_S; with several replicas on PostgreSQL a run is adopted
  only once its owner has been silent for STALE_AFTER_S, so no two replicas run one graph.
  On SQLite (one process) every unfinished run is adopted at start.
- A remediation proposal pauses the run (`interrupt`); a newer run's proposal supersedes it.
  A human decision names the run and the proposal it was shown (its digest); it is first
  recorded on that run (one winner among concurrent clicks), then resumes the graph; a
  decision recorded before a crash is replayed at start.
- A run cut short by the store (down, restarting, out of disk) is not failed: it is held and
  resumed from its checkpoint once the store takes writes again, a bounded number of times
  (agents/outages.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

import aiosqlite
import structlog
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command
from prometheus_client import Histogram
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from firebreak.agents.context import Deps
from firebreak.agents.graph import InvestigationGraph
from firebreak.agents.intake import FIREBREAK
from firebreak.agents.outages import StoreOutages
from firebreak.agents.questions import answer_question
from firebreak.agents.state import CHECKPOINTED, InvestigationState
from firebreak.incidents.events import Change, IncidentEvent
from firebreak.incidents.ports import Decision, RemediationVote
from firebreak.store import incidents, investigations
from firebreak.store.health import describe, is_outage
from firebreak.store.incidents import utcnow
from firebreak.store.investigations import Run, RunStatus
from firebreak.tools.models import Evidence

log = structlog.get_logger(__name__)

HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0


class Approvers(Protocol):
    def may_approve(self, user_id: str, user_groups: list[str]) -> bool: ...


class InvestigationService:
    """The `Investigations` port (incidents/ports.py)."""

    def __init__(
        self,
        graph: InvestigationGraph,
        deps: Deps,
        approvers: Approvers,
        *,
        durations: Histogram,
        ingest_busy: Callable[[], bool],
    ) -> None:
        self._graph = graph
        self._durations = durations  # seconds each drive of a run took, by how it ended
        self._deps = deps
        self._approvers = approvers
        self._writer = deps.writer
        self._slots = asyncio.Semaphore(deps.settings.investigation.max_concurrent)
        # While an alert storm is taken in, graphs start one at a time: the CPU goes to
        # acknowledging Alertmanager first (the cards are posted regardless).
        self._ingest_busy = ingest_busy
        self._storm_turns = asyncio.Semaphore(1)
        self._active: dict[int, asyncio.Task[None]] = {}
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._single_process = deps.engine.url.get_backend_name() == "sqlite"
        self._keepalive: asyncio.Task[None] | None = None
        self._outages = StoreOutages(self._writer, self._resume, owner=self._owner)

    @property
    def deps(self) -> Deps:
        """What the graph's nodes are given (read-only: tests and benches read its metrics)."""
        return self._deps

    def on_event(self, event: IncidentEvent) -> None:
        """Bus subscriber: a newly opened incident is investigated."""
        if event.change is Change.OPENED:
            self.request(event.incident_id, actor=event.actor, reason="incident opened")

    def request(self, incident_id: int, *, actor: str, reason: str) -> bool:
        if incident_id in self._active or self._outages.holds(incident_id):
            return False
        thread_id = f"inv-{incident_id}-{uuid.uuid4().hex[:12]}"
        self._track(incident_id, self._start(incident_id, thread_id, actor, reason))
        return True

    async def replay(self, incident_id: int, seed: Evidence, *, actor: str, reason: str) -> str:
        """Investigate with `seed` already gathered (log lines, metric readings, cluster
        findings joined to what the configured sources find), and wait for the end; the run's
        thread id. `firebreak eval` replays stored and shipped incidents this way."""
        thread_id = f"inv-{incident_id}-{uuid.uuid4().hex[:12]}"
        items = {"logs": seed.logs, "metrics": seed.metrics, "kubernetes": seed.kubernetes}
        self._track(incident_id, self._start(incident_id, thread_id, actor, reason, items))
        while (task := self._active.get(incident_id)) or self._outages.holds(incident_id):
            await (task if task is not None else asyncio.sleep(0.1))
        return thread_id

    async def wait_idle(self) -> None:
        """Until every running investigation has finished, including those held until the
        store is back (tests, the demo, the CLI)."""
        while self._active or self._outages.holding:
            if self._active:
                await asyncio.gather(*self._active.values(), return_exceptions=True)
            else:
                await asyncio.sleep(0.1)

    async def start(self) -> None:
        """Adopt what crashed processes left, then keep our runs' heartbeat going."""
        await self.adopt_orphans(everything=self._single_process)
        self._keepalive = asyncio.create_task(self._beat(), name="investigation-heartbeat")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._writer.run(partial(investigations.heartbeat, owner=self._owner))
                if not self._single_process:
                    await self.adopt_orphans(everything=False)
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("investigation heartbeat failed")
                    continue
                log.warning("investigation heartbeat failed: no store", error=describe(exc))

    async def adopt_orphans(self, *, everything: bool) -> int:
        """Resume unfinished runs whose owner is gone (all of them when `everything`)."""
        stale = None if everything else utcnow() - timedelta(seconds=STALE_AFTER_S)
        runs = await self._writer.run(
            partial(investigations.adopt_runs, owner=self._owner, stale_before=stale)
        )
        for run in runs:
            self._resume(run)
        if runs:
            log.info("resuming interrupted investigations", count=len(runs))
        return len(runs)

    async def answer_question(self, incident_id: int, question: str, *, actor: str) -> str:
        async with self._deps.engine.connect() as conn:
            incident = await incidents.get_incident(conn, incident_id)
            gathered = await incidents.latest_evidence(conn, incident_id)
        if incident is None:
            return f"There is no incident #{incident_id}."
        summary = (
            f"#{incident.id} {incident.title} — {incident.status}, severity {incident.severity}, "
            f"service {incident.service}, {incident.alert_count} alert(s)"
        )
        return await answer_question(
            question,
            summary,
            Evidence.model_validate(gathered or {}),
            incident.analysis,
            self._deps.gateway,
            redactor=self._deps.redactor,
        )

    async def decide_remediation(self, vote: RemediationVote) -> Decision:
        """Decide on the proposal of run `approval`, only if it still waits and shows the
        proposal `digest` names: a click on an older message never decides a newer one."""
        incident_id, approval, digest = vote.incident_id, vote.approval, vote.digest
        if not self._approvers.may_approve(vote.actor, list(vote.user_groups)):
            return "refused"
        if not approval:
            return "mismatch"
        waiting = await self._waiting(incident_id, approval)
        if waiting != "waiting":
            return waiting
        if digest is None or digest != await self._digest_of(approval):
            return "mismatch"
        decision = {
            "approve": vote.approve,
            "actor": vote.actor,
            "delay_s": vote.delay_s,
            "digest": digest,
        }
        claimed = await self._writer.run(
            partial(
                investigations.claim_decision,
                thread_id=approval,
                incident_id=incident_id,
                decision=decision,
                owner=self._owner,
            )
        )
        if not claimed:  # another click, or a newer proposal, came first
            outcome = await self._waiting(incident_id, approval)
            return "decided" if outcome == "waiting" else outcome
        await self._drive(incident_id, approval, Command(resume=decision))
        return "approved" if vote.approve else "rejected"

    async def _waiting(self, incident_id: int, thread_id: str) -> Decision | Literal["waiting"]:
        """Whether run `thread_id` of the incident waits for a decision, else why not."""
        async with self._deps.engine.connect() as conn:
            run = await conn.run_sync(investigations.run_of, thread_id)
        if run is None or run.incident_id != incident_id:
            return "nothing_waiting"
        if run.status is RunStatus.SUPERSEDED:
            return "superseded"
        if run.status is not RunStatus.AWAITING_APPROVAL:
            return "decided"
        return "waiting"

    async def _digest_of(self, thread_id: str) -> str | None:
        """The digest of the proposal run `thread_id` paused at, from its checkpoint."""
        snapshot = await self._graph.aget_state(_thread(thread_id))
        if not snapshot.values:
            return None
        analysis = InvestigationState.model_validate(snapshot.values).analysis
        proposal = analysis.remediation if analysis is not None else None
        return proposal.digest() if proposal is not None else None

    async def close(self) -> None:
        """Stop without losing anything: cut-short runs stay `running` and resume next start."""
        await self._outages.close()
        tasks = list(self._active.values()) + ([self._keepalive] if self._keepalive else [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._writer.run(partial(investigations.release, owner=self._owner))

    def _resume(self, run: Run) -> None:
        """Drive an unfinished run again from its last checkpoint (adopted, or held through
        a store outage): with the decision it was being resumed with, if any."""
        self._track(run.incident_id, self._continue(run))

    async def _continue(self, run: Run) -> None:
        try:
            start = await self._start_of(run)
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._outages.hold(run.incident_id, run.thread_id, exc)
            return
        await self._drive(run.incident_id, run.thread_id, start)

    async def _start_of(self, run: Run) -> InvestigationState | Command | None:
        if run.status is RunStatus.DECIDING and run.decision is not None:
            return Command(resume=run.decision)
        snapshot = await self._graph.aget_state(_thread(run.thread_id))
        return None if snapshot.values else _input(run.incident_id, run.thread_id)

    def _track(self, incident_id: int, work: Any) -> None:
        task = asyncio.create_task(work, name=f"investigation-{incident_id}")
        self._active[incident_id] = task
        task.add_done_callback(lambda _: self._active.pop(incident_id, None))

    async def _start(
        self,
        incident_id: int,
        thread_id: str,
        actor: str,
        reason: str,
        seed: dict[str, Any] | None = None,
    ) -> None:
        create = partial(
            investigations.create_run,
            thread_id=thread_id,
            incident_id=incident_id,
            actor=actor,
            reason=reason,
            owner=self._owner,
        )
        try:
            await self._writer.run(create)
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._outages.hold(incident_id, thread_id, exc, record=create, then_resume=True)
            return
        await self._drive(incident_id, thread_id, _input(incident_id, thread_id, seed))

    async def _drive(
        self, incident_id: int, thread_id: str, start: InvestigationState | Command | None
    ) -> None:
        config = _thread(thread_id)
        failure = None
        async with self._slot():
            began = time.perf_counter()
            try:
                await self._graph.ainvoke(start, config, context=self._deps, durability="sync")
                paused = bool((await self._graph.aget_state(config)).next)
                status = RunStatus.AWAITING_APPROVAL if paused else RunStatus.DONE
            except asyncio.CancelledError:
                raise  # shutdown: the run stays `running` and resumes at the next start
            except Exception as exc:
                if is_outage(exc):  # not the run's fault: resumed once the store is back
                    self._outages.hold(incident_id, thread_id, exc)
                    return
                log.exception("investigation failed", thread_id=thread_id)
                status, failure = RunStatus.FAILED, self._failure(exc)
            seconds = time.perf_counter() - began
        if await self._settle(incident_id, thread_id, status, failure):
            await self._finished(incident_id, thread_id, status, seconds)

    async def _settle(
        self,
        incident_id: int,
        thread_id: str,
        status: RunStatus,
        failure: tuple[str, str] | None,
    ) -> bool:
        """Record how the drive ended; False when the store is away (then it is recorded as
        it is once the store is back)."""
        work = partial(
            investigations.settle,
            thread_id=thread_id,
            status=status,
            incident_id=incident_id,
            failure=failure,
        )
        try:
            await self._writer.run(work)
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._outages.hold(incident_id, thread_id, exc, record=work)
            return False
        return True

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of `max_concurrent`; during a storm also the storm's single turn."""
        async with self._slots:
            if not self._ingest_busy():
                yield
                return
            async with self._storm_turns:
                yield

    async def _finished(
        self, incident_id: int, thread_id: str, status: RunStatus, seconds: float
    ) -> None:
        """One info line and one histogram sample per drive of a run (a run paused for an
        approval is driven again when it is decided)."""
        self._durations.labels(status.value).observe(seconds)
        async with self._deps.engine.connect() as conn:
            analysis = await incidents.analysis_of_run(conn, thread_id)
        log.info(
            "investigation finished",
            incident_id=incident_id,
            thread_id=thread_id,
            status=status.value,
            execution_status=analysis.execution_status.value if analysis else None,
            confidence=analysis.confidence_score if analysis else None,
            seconds=round(seconds, 3),
        )

    def _failure(self, exc: Exception) -> tuple[str, str]:
        """The `AI_ANALYSIS_FAILED` event of a run that failed (actor, message), redacted."""
        message = self._deps.redactor.redact(f"Investigation failed: {type(exc).__name__}: {exc}")
        return FIREBREAK, message[:500]


def _thread(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _input(
    incident_id: int, thread_id: str, seed: dict[str, Any] | None = None
) -> InvestigationState:
    """A run's first input: only the fields given are written (LangGraph reads the fields a
    model was made with), so the reducers start from empty lists."""
    return InvestigationState(incident_id=incident_id, run_id=thread_id, **(seed or {}))


CHECKPOINT_POOL_MAX = 8  # connections the PostgreSQL saver may hold (each only per operation)
CHECKPOINT_POOL_WAIT_S = 10.0  # a checkpoint write waits this long for a connection, then fails
CONNECT_TIMEOUT_S = 5


@asynccontextmanager
async def open_checkpointer(
    store_url: str, checkpoint_path: str | None = None
) -> AsyncIterator[BaseCheckpointSaver]:
    """The LangGraph saver matching the store: SQLite file beside it, or the same PostgreSQL.

    On PostgreSQL the saver takes its connections from a psycopg pool that checks each one
    before handing it out (`check_connection`) and opens new ones as needed: with a single
    connection (`AsyncPostgresSaver.from_conn_string`) a server restart closed it for good,
    and every investigation failed with "the connection is closed" until Firebreak itself was
    restarted. While the server is away a checkpoint write fails after
    CHECKPOINT_POOL_WAIT_S, the run is retried once the store is back (`InvestigationService`).

    Either saver rebuilds only the state's own types from a checkpoint (`checkpoint_serde`)."""
    url = make_url(store_url)
    if url.get_backend_name() == "postgresql":
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        async with checkpoint_pool(conninfo) as pool:
            saver = AsyncPostgresSaver(conn=pool, serde=checkpoint_serde())
            await saver.setup()
            yield saver
        return
    path = checkpoint_path or f"{url.database}.checkpoints"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(path) as conn:
        yield AsyncSqliteSaver(conn, serde=checkpoint_serde())


def checkpoint_serde() -> JsonPlusSerializer:
    """LangGraph's serializer, allowed to rebuild the investigation state's types
    (`agents.state.CHECKPOINTED`) besides its own safe ones: the typed state comes back as
    it was written, without a warning per type, and nothing else named in a checkpoint is
    imported."""
    return JsonPlusSerializer(allowed_msgpack_modules=CHECKPOINTED)


@asynccontextmanager
async def checkpoint_pool(
    conninfo: str,
) -> AsyncIterator[AsyncConnectionPool[AsyncConnection[DictRow]]]:
    """The pool `AsyncPostgresSaver` wants: autocommit, no prepared statements (a statement
    prepared on a connection is gone after a reconnect), rows as dicts."""
    pool = AsyncConnectionPool(
        conninfo,
        connection_class=AsyncConnection[DictRow],
        min_size=1,
        max_size=CHECKPOINT_POOL_MAX,
        kwargs={
            "autocommit": True,
            "prepare_threshold": 0,
            "row_factory": dict_row,
            "connect_timeout": CONNECT_TIMEOUT_S,
        },
        check=AsyncConnectionPool.check_connection,
        timeout=CHECKPOINT_POOL_WAIT_S,
        name="checkpoints",
        open=False,
    )
    await pool.open(wait=True, timeout=CHECKPOINT_POOL_WAIT_S)
    try:
        yield pool
    finally:
        await pool.close()
