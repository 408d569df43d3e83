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
replica or a restart never runs it twice. If the process dies while the action runs, the
deadline job finds the run still `executing` and records that the outcome is unknown (it is
not re-run: a half-applied restart or rollback must be looked at by a human).

What was approved is what runs: the action definition is snapshotted at approval; the action
must still be in the allowlist when it runs. Output is redacted and truncated before it goes
to Slack or the timeline.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from sqlalchemy import select

from firebreak.bot.cards import escape, mention, slack_date, truncate
from firebreak.config import PrometheusSource, RemediationAction, VerifyConfig
from firebreak.ports import ApprovedRemediation
from firebreak.store import escalations as store
from firebreak.store.incidents import add_event, utcnow
from firebreak.store.models import Incident
from firebreak.store.schemas import EventType, IncidentStatus
from firebreak.tools.actions import ActionError, run_action, validate_parameters
from firebreak.tools.prometheus import PrometheusError, query_range
from firebreak.tools.redact import Redactor

if TYPE_CHECKING:
    from firebreak.app import Runtime
    from firebreak.scheduler import JobScheduler

log = structlog.get_logger(__name__)

ACTOR = "firebreak"
OUTPUT_MAX = 2000  # characters of output kept in the timeline and shown in the thread
DEADLINE_MARGIN_S = 60.0  # after timeout_s + this, an `executing` run is declared interrupted
VERIFY_WINDOW_S = 30.0  # the verification reads the last point of this range

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def refusal_text(approvers: list[str]) -> str:
    """The polite refusal for someone not allowed to approve (for the Slack handlers)."""
    who = ", ".join(mention(a) for a in approvers[:10])
    return (
        "Sorry, you are not allowed to approve remediations for this bot. "
        f"Please ask one of: {who}."
    )


class RemediationService:
    """Implements `firebreak.ports.Remediations`; the scheduler's job calls `run_job`."""

    def __init__(self, runtime: Runtime, scheduler: JobScheduler) -> None:
        self.runtime = runtime
        self.scheduler = scheduler
        self.config = runtime.config.remediation
        self.redactor = Redactor.from_config(
            runtime.config.investigation, secrets=runtime.secrets.values()
        )
        self._running: set[int] = set()

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
        action = self.action(approved.proposal.action)
        if action is None:
            raise ActionError(f"{approved.proposal.action!r} is not an allowlisted action")
        values = {p.name: p.value for p in approved.proposal.parameters}
        if len(values) != len(approved.proposal.parameters):
            raise ActionError("a parameter is given twice")
        return action, validate_parameters(action, values)

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
        key = approved.key or None
        async with self.runtime.engine.begin() as conn:
            if key is not None and await store.run_for_approval(conn, key) is not None:
                log.info("remediation already scheduled for this approval", approval_key=key)
                return
            run_id = await store.create_run(
                conn,
                incident_id=approved.incident_id,
                action=action.name,
                definition=action.model_dump(mode="json"),
                parameters=parameters,
                reason=approved.proposal.reason,
                approved_by=approved.approved_by,
                created_at=now,
                updated_at=now,
                phase=store.SCHEDULED,
                next_at=run_at,
                step=0,
                output="",
                approval_key=key,
            )
        log.info("remediation scheduled", run_id=run_id, action=action.name, delay_s=delay)
        if delay > 0:
            self._post(
                approved.incident_id,
                f":hourglass_flowing_sand: `{escape(action.name)}` approved by "
                f"{mention(approved.approved_by)} will run {slack_date(run_at)} "
                f"(in {_duration(delay)}).",
            )
        self.scheduler.schedule(store.Due("rem", run_id, 0, run_at))

    # ------------------------------------------------------------------ job

    async def run_job(self, run_id: int, step: int) -> None:
        async with self.runtime.engine.connect() as conn:
            run = await store.get_run(conn, run_id)
            if run is None or run.step != step:
                return
            status = await conn.scalar(
                select(Incident.status).where(Incident.id == run.incident_id)
            )
        if run.phase == store.SCHEDULED:
            await self._execute(run, status)
        elif run.phase == store.EXECUTING:
            await self._interrupted(run)
        elif run.phase == store.VERIFY:
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
            await self._finish(run, run.step, store.SCHEDULED, ok=False, output="", skipped=skipped)
            return
        now = utcnow()
        deadline = now + timedelta(seconds=definition.timeout_s + DEADLINE_MARGIN_S)
        async with self.runtime.engine.begin() as conn:
            claimed = await store.advance_run(
                conn, run.id, run.step, store.SCHEDULED,
                to_phase=store.EXECUTING, next_at=deadline, now=now,
            )  # fmt: skip
        if not claimed:
            return
        self.scheduler.schedule(store.Due("rem", run.id, run.step + 1, deadline))
        log.info("remediation running", run_id=run.id, action=run.action)
        self._running.add(run.id)
        try:
            async with asyncio.timeout(definition.timeout_s + 10):  # the executors time out first
                ok, raw = await run_action(definition, run.parameters)
        except TimeoutError:
            ok, raw = False, f"timed out after {definition.timeout_s:g}s"
        except Exception as exc:  # an executor bug must still be recorded
            log.exception("remediation executor failed", run_id=run.id)
            ok, raw = False, f"{type(exc).__name__}: {exc}"
        finally:
            self._running.discard(run.id)
        output = truncate(self.redactor.redact(raw), OUTPUT_MAX)
        await self._finish(run, run.step + 1, store.EXECUTING, ok=ok, output=output)

    async def _interrupted(self, run: Any) -> None:
        if run.id in self._running:
            return
        await self._finish(
            run,
            run.step,
            store.EXECUTING,
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
    ) -> None:
        verify = run.definition.get("verify")
        now = utcnow()
        next_at = None
        if ok and verify:
            next_at = now + timedelta(seconds=float(verify["within_s"]))
        to_phase = store.VERIFY if next_at else store.DONE
        params = ", ".join(f"{k}={v}" for k, v in sorted(run.parameters.items()))
        if skipped:
            message = f"{run.action} not run: {skipped}"
        else:
            message = f"{run.action}({params}) {'succeeded' if ok else 'failed'}"
        async with self.runtime.engine.begin() as conn:
            if not await store.advance_run(
                conn, run.id, step, phase,
                to_phase=to_phase, next_at=next_at, now=now, ok=ok, output=output or skipped or "",
            ):  # fmt: skip
                return
            await add_event(
                conn,
                run.incident_id,
                EventType.REMEDIATION_EXECUTED,
                ACTOR,
                message,
                {
                    "run_id": run.id,
                    "action": run.action,
                    "parameters": run.parameters,
                    "approved_by": run.approved_by,
                    "ok": ok,
                    "output": output,
                    "skipped": skipped,
                },
            )
        log.info("remediation finished", run_id=run.id, ok=ok, skipped=skipped)
        name = f"`{escape(run.action)}`"
        if skipped:
            text = f":warning: Remediation {name} was not run: {escape(skipped)}."
        else:
            verdict = "succeeded :white_check_mark:" if ok else "failed :x:"
            text = f":gear: Remediation {name} {verdict}"
            if output:
                text += f"\n```{escape(output).replace('```', '` ` `')}```"
            if next_at and verify:
                text += (
                    f"\nVerifying {slack_date(next_at)}: `{escape(verify['promql'])}` "
                    f"{escape(verify['op'])} {verify['threshold']:g}"
                )
        self._post(run.incident_id, text)
        if next_at:
            self.scheduler.schedule(store.Due("rem", run.id, step + 1, next_at))

    async def _verify(self, run: Any) -> None:
        verify = VerifyConfig.model_validate(run.definition["verify"])
        ok, value, error = await self.check(verify)
        now = utcnow()
        async with self.runtime.engine.begin() as conn:
            if not await store.advance_run(
                conn, run.id, run.step, store.VERIFY,
                to_phase=store.DONE, next_at=None, now=now, verified=ok,
            ):  # fmt: skip
                return
            shown = "no data" if value is None else f"{value:g}"
            message = (
                f"{run.action}: {verify.promql} = {shown}, wanted {verify.op} "
                f"{verify.threshold:g}: {'verified' if ok else 'NOT verified'}"
            )
            await add_event(
                conn,
                run.incident_id,
                EventType.REMEDIATION_VERIFIED,
                ACTOR,
                message + (f" ({error})" if error else ""),
                {
                    "run_id": run.id,
                    "action": run.action,
                    "ok": ok,
                    "value": value,
                    "threshold": verify.threshold,
                    "op": verify.op,
                    "promql": verify.promql,
                    "error": error,
                },
            )
        icon = ":white_check_mark:" if ok else ":x:"
        text = (
            f"{icon} Verification of `{escape(run.action)}` "
            f"{'passed' if ok else 'failed'}: `{escape(verify.promql)}` is {shown} "
            f"(wanted {escape(verify.op)} {verify.threshold:g})"
        )
        if error:
            text += f" — {escape(truncate(error, 300))}"
        self._post(run.incident_id, text)

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
        sources = self.runtime.config.sources.metrics
        if name is None:
            return sources[0] if sources else None
        return next((s for s in sources if s.name == name), None)

    def _post(self, incident_id: int, text: str) -> None:
        if self.runtime.notifier is not None:
            self.runtime.notifier.post_in_thread(incident_id, text, purpose="remediation")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:g} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
