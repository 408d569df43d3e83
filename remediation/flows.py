"""Approved remediations: run an allowlisted action once, later if asked, then verify it.

The investigation proposes an action and pauses; a human approves; the investigation asks
`may_approve`, records REMEDIATION_APPROVED and calls `schedule`. From there this module owns
the run, kept in `remediation_runs` (the source of truth the scheduler's jobs are reconciled
from):

    scheduled --(run_at)--> executing --(done)--> verify --(within_s)--> done
                                      \\--(failed / no verify)----------> done

Each arrow is a conditional UPDATE on `step` with its timeline event in the same transaction.
The action itself is AT MOST once: the run is claimed (`executing`, with a deadline of the
action's timeout plus a margin) and committed BEFORE it starts, so a duplicate job, a second
replica or a restart never runs it twice. It runs in a supervisor process of its own
(`remediation/supervisor.py`) that outlives Firebreak: if Firebreak dies while the action runs,
the supervisor still writes the outcome on the run and makes it due, and the next scheduler
(after a restart, or another replica) records that outcome. Only when the supervisor died too
does the deadline job find no outcome and record it as unknown (never re-run: a half-applied
restart or rollback must be looked at by a human).

What was approved is what runs: the action definition is snapshotted at approval; the action
must still be in the allowlist when it runs. Output is redacted and truncated before it goes
to Slack or the timeline.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import structlog
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from firebreak.incidents.notices import (
    RemediationFinished,
    RemediationScheduled,
    RemediationVerified,
)
from firebreak.incidents.ports import Notifier
from firebreak.remediation.config import RemediationConfig
from firebreak.remediation.supervisor import Supervised, supervise
from firebreak.scheduler.core import Due, JobKind, Scheduling
from firebreak.store import remediations
from firebreak.store.db import is_memory_sqlite
from firebreak.store.incidents import record_event, utcnow
from firebreak.store.remediations import DONE, EXECUTING, SCHEDULED, VERIFY
from firebreak.store.schemas import EventType, IncidentStatus, RemediationProposal
from firebreak.store.writer import Writer
from firebreak.tools.actions import check_proposal
from firebreak.tools.config import RemediationAction, VerifyConfig
from firebreak.tools.prometheus import PrometheusError, PrometheusSource, query_range
from firebreak.tools.redact import Redactor

log = structlog.get_logger(__name__)

ACTOR = "firebreak"
KIND = "rem"  # the scheduler's job kind for run deadlines
OUTPUT_MAX = 2000  # characters of output kept in the timeline and shown in the thread
DEADLINE_MARGIN_S = 60.0  # after timeout_s + this, an `executing` run is declared interrupted
SUPERVISOR_MARGIN_S = 30.0  # the supervisor's start and its store write, beyond timeout_s
VERIFY_WINDOW_S = 30.0  # the verification reads the last point of this range

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class ApprovedRemediation:
    incident_id: int
    proposal: RemediationProposal
    approved_by: str
    delay_s: float = 0
    key: str = ""  # unique per approval (the investigation run): scheduling it twice is a no-op


@dataclass(kw_only=True, eq=False)
class RemediationService:
    """Who may approve, scheduling an approved run, and the run itself (its job kind)."""

    engine: AsyncEngine
    writer: Writer
    notifier: Notifier
    scheduler: Scheduling
    config: RemediationConfig
    metrics_sources: list[PrometheusSource]
    redactor: Redactor
    _running: set[int] = field(default_factory=set, init=False, repr=False)

    def job_kinds(self) -> list[JobKind]:
        return [JobKind(KIND, self.run_job, pending_runs)]

    # ------------------------------------------------------------------ public (ports)

    def may_approve(self, user_id: str, user_groups: list[str]) -> bool:
        approvers = set(self.config.approvers)
        if not approvers:
            return True
        return user_id in approvers or any(group in approvers for group in user_groups)

    def action(self, name: str) -> RemediationAction | None:
        return next((a for a in self.config.actions if a.name == name), None)

    def validate(self, approved: ApprovedRemediation) -> tuple[RemediationAction, dict[str, str]]:
        """The allowlisted action and its checked parameters; ActionError when not runnable."""
        proposal = approved.proposal
        return check_proposal(
            self.config.actions, proposal.action, [(p.name, p.value) for p in proposal.parameters]
        )

    async def schedule(self, approved: ApprovedRemediation) -> None:
        """Persist the run (execute at now + delay_s, verify after verify.within_s) and
        schedule its job. Raises ActionError (a ValueError) for an action or parameters the
        allowlist does not accept: nothing is scheduled then. An approval already scheduled
        (same `key`: the investigation re-ran its last step after a crash) is not scheduled
        again, so an approved action can never run twice."""
        action, parameters = self.validate(approved)
        delay = max(0.0, float(approved.delay_s))
        now = utcnow()
        run_at = now + timedelta(seconds=delay)
        values = {
            "incident_id": approved.incident_id,
            "action": action.name,
            "definition": action.model_dump(mode="json"),
            "parameters": parameters,
            "reason": approved.proposal.reason,
            "approved_by": approved.approved_by,
            "created_at": now,
            "updated_at": now,
            "phase": SCHEDULED,
            "next_at": run_at,
            "step": 0,
            "output": "",
            "approval_key": approved.key or None,
        }
        run_id = await self.writer.run(partial(_create_once, values=values))
        if run_id is None:
            log.info("remediation already scheduled for this approval", approval_key=approved.key)
            return
        log.info("remediation scheduled", run_id=run_id, action=action.name, delay_s=delay)
        if delay > 0:
            self.notifier.tell(approved.incident_id, RemediationScheduled(
                action=action.name, approved_by=approved.approved_by, run_at=run_at, delay_s=delay
            ))  # fmt: skip
        self.scheduler.schedule(Due(KIND, run_id, 0, run_at))

    # ------------------------------------------------------------------ job

    async def run_job(self, run_id: int, step: int) -> None:
        async with self.engine.connect() as conn:
            found = await conn.run_sync(remediations.get_run, run_id)
        if found is None:
            return
        run, status = found, found.incident_status
        if run.step != step:
            return
        if run.phase == SCHEDULED:
            await self._execute(run, status)
        elif run.phase == EXECUTING:
            await self._interrupted(run)
        elif run.phase == VERIFY:
            await self._verify(run)

    # ------------------------------------------------------------------ phases

    async def _execute(self, run: Any, incident_status: str | None) -> None:
        definition = RemediationAction.model_validate(run.definition)
        skipped = None
        if incident_status == IncidentStatus.RESOLVED.value:
            skipped = "the incident was resolved before it was due"
        elif self.action(run.action) is None:
            skipped = "the action is no longer in the allowlist"
        if skipped is not None:
            await self._finish(run, run.step, SCHEDULED, ok=False, output="", skipped=skipped)
            return
        now = utcnow()
        deadline = now + timedelta(seconds=definition.timeout_s + DEADLINE_MARGIN_S)
        claimed = await self.writer.run(partial(
            remediations.advance_run, run_id=run.id, step=run.step, phase=SCHEDULED,
            to_phase=EXECUTING, next_at=deadline, now=now,
        ))  # fmt: skip
        if not claimed:
            return
        self.scheduler.schedule(Due(KIND, run.id, run.step + 1, deadline))
        log.info("remediation running", run_id=run.id, action=run.action)
        self._running.add(run.id)
        try:
            ok, raw = await self._run_supervised(run, definition)
            output = self.redactor.redact(raw)[:OUTPUT_MAX]
            await self._finish(run, run.step + 1, EXECUTING, ok=ok, output=output)
        finally:  # only now may a deadline job finish the run instead (its supervisor's record)
            self._running.discard(run.id)

    async def _run_supervised(self, run: Any, definition: RemediationAction) -> tuple[bool, str]:
        try:
            return await supervise(
                self._supervised(run, run.step + 1, definition),
                timeout_s=definition.timeout_s + SUPERVISOR_MARGIN_S,
            )
        except Exception as exc:  # a failure to supervise must still be recorded
            log.exception("remediation supervisor failed", run_id=run.id)
            return False, f"{type(exc).__name__}: {exc}"

    def _supervised(self, run: Any, step: int, definition: RemediationAction) -> Supervised:
        url = self.engine.url.render_as_string(hide_password=False)
        return Supervised(
            run_id=run.id,
            step=step,
            phase=EXECUTING,
            definition=definition.model_dump(mode="json"),
            parameters=dict(run.parameters),
            store_url=None if is_memory_sqlite(url) else url,
            redaction=self.redactor.recipe(),
            output_max=OUTPUT_MAX,
        )

    async def _interrupted(self, run: Any) -> None:
        """The run is still `executing` at its deadline, or its supervisor made it due: finish
        it with the outcome the supervisor recorded, else as unknown."""
        if run.id in self._running:
            return
        if run.ok is not None:
            await self._finish(
                run, run.step, EXECUTING, ok=run.ok,
                output=self.redactor.redact(run.output or "")[:OUTPUT_MAX], recovered=True,
            )  # fmt: skip
            return
        await self._finish(
            run,
            run.step,
            EXECUTING,
            ok=False,
            output="",
            skipped="Firebreak stopped while the action ran; its outcome is unknown, check it",
        )

    async def _finish(
        self,
        run: Any,
        step: int,
        phase: str,
        *,
        ok: bool,
        output: str,
        skipped: str | None = None,
        recovered: bool = False,
    ) -> None:
        verify = run.definition.get("verify")
        now = utcnow()
        next_at = None
        if ok and verify:
            next_at = now + timedelta(seconds=float(verify["within_s"]))
        to_phase = VERIFY if next_at else DONE
        params = ", ".join(f"{k}={v}" for k, v in sorted(run.parameters.items()))
        if skipped:
            message = f"{run.action} not run: {skipped}"
        else:
            message = f"{run.action}({params}) {'succeeded' if ok else 'failed'}"
        if recovered:
            message += " (recorded by its supervisor: Firebreak stopped while it ran)"
        event = {
            "run_id": run.id,
            "action": run.action,
            "parameters": run.parameters,
            "approved_by": run.approved_by,
            "ok": ok,
            "output": output,
            "skipped": skipped,
            "recovered": recovered,
        }

        def record(conn: Connection) -> bool:
            if not remediations.advance_run(
                conn, run.id, step, phase,
                to_phase=to_phase, next_at=next_at, now=now, ok=ok, output=output or skipped or "",
            ):  # fmt: skip
                return False
            record_event(
                conn, run.incident_id, EventType.REMEDIATION_EXECUTED, ACTOR, message, event
            )
            return True

        if not await self.writer.run(record):
            return
        log.info("remediation finished", run_id=run.id, ok=ok, skipped=skipped)
        self.notifier.tell(run.incident_id, RemediationFinished(
            action=run.action, ok=ok, output=output, skipped=skipped,
            verify=verify if next_at else None, verify_at=next_at,
        ))  # fmt: skip
        if next_at:
            self.scheduler.schedule(Due(KIND, run.id, step + 1, next_at))

    async def _verify(self, run: Any) -> None:
        verify = VerifyConfig.model_validate(run.definition["verify"])
        ok, value, error = await self.check(verify)
        now = utcnow()
        shown = "no data" if value is None else f"{value:g}"
        message = (
            f"{run.action}: {verify.promql} = {shown}, wanted {verify.op} "
            f"{verify.threshold:g}: {'verified' if ok else 'NOT verified'}"
        )
        event = {
            "run_id": run.id,
            "action": run.action,
            "ok": ok,
            "value": value,
            "threshold": verify.threshold,
            "op": verify.op,
            "promql": verify.promql,
            "error": error,
        }

        def record(conn: Connection) -> bool:
            if not remediations.advance_run(
                conn, run.id, run.step, VERIFY,
                to_phase=DONE, next_at=None, now=now, verified=ok,
            ):  # fmt: skip
                return False
            text = message + (f" ({error})" if error else "")
            record_event(conn, run.incident_id, EventType.REMEDIATION_VERIFIED, ACTOR, text, event)
            return True

        if not await self.writer.run(record):
            return
        self.notifier.tell(run.incident_id, RemediationVerified(
            action=run.action, ok=ok, value=value, promql=verify.promql, op=verify.op,
            threshold=verify.threshold, error=error,
        ))  # fmt: skip

    async def check(self, verify: VerifyConfig) -> tuple[bool, float | None, str | None]:
        """Query Prometheus now: (ok, the value judged, error). Every series must satisfy the
        comparison; the value reported is the worst one (the first failing, else the one
        closest to the threshold). No data is a failure."""
        source = self._source(verify.source)
        if source is None:
            return False, None, "no Prometheus source configured (sources.metrics)"
        end = utcnow()
        try:
            async with httpx.AsyncClient(timeout=source.timeout_s) as client:
                series = await query_range(
                    client,
                    source.url,
                    verify.promql,
                    start=end - timedelta(seconds=VERIFY_WINDOW_S),
                    end=end,
                    step=1.0,
                    timeout_s=source.timeout_s,
                )
        except (PrometheusError, httpx.HTTPError) as exc:
            return False, None, self.redactor.redact(f"{type(exc).__name__}: {exc}")[:500]
        values = []
        for item in series:
            points = item.get("values") or []
            if points:
                try:
                    values.append(float(points[-1][1]))
                except (TypeError, ValueError, IndexError):
                    continue
        if not values:
            return False, None, "the query returned no data"
        compare = _OPS[verify.op]
        failing = [v for v in values if not compare(v, verify.threshold)]
        if failing:
            return False, failing[0], None
        worst = max(values) if verify.op in {"<", "<="} else min(values)
        return True, worst, None

    def _source(self, name: str | None) -> PrometheusSource | None:
        sources = self.metrics_sources
        if name is None:
            return sources[0] if sources else None
        return next((s for s in sources if s.name == name), None)


def _create_once(conn: Connection, values: dict[str, Any]) -> int | None:
    """The run, unless this approval already has one (None then)."""
    key = values["approval_key"]
    if key is not None and remediations.run_for_approval(conn, key) is not None:
        return None
    return remediations.create_run(conn, **values)


def pending_runs(conn: Connection) -> list[Due]:
    """Every run deadline, as the scheduler fires it (reconciliation, in a worker thread)."""
    waiting = remediations.waiting_runs(conn)
    return [Due(KIND, run_id, step, next_at) for run_id, step, next_at in waiting]
