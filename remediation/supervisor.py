"""An approved action's supervisor: a process of its own that runs the action and writes how it
ended into the store.

Why: the action must not share Firebreak's fate. When Firebreak was killed (kill -9, the OOM
killer, a crash) while an action ran, the action went on and completed, but nobody was left to
record it, and the restart could only say "outcome unknown". Now Firebreak starts this module
(`python -m firebreak.remediation.supervisor`) in a session of its own and hands it the run
over a pipe; the supervisor runs the action through the same executors
(`tools.actions.run_action`: argv without a shell, the child's minimal environment, the
action's timeout), redacts the output, writes the outcome on the run's row while the run is
still `executing` (`store.remediations.record_exit`, which also makes the run due now), and only
then answers on stdout. A live Firebreak records the answer as before; after Firebreak's death
the next scheduler finds the outcome on the row and records that instead of "unknown".

The supervisor survives what ends Firebreak: its parent's death (it is no child Firebreak must
reap), a terminal's signals (new session), and SIGTERM, SIGINT and SIGHUP, which it notes and
ignores (the action is bounded by its own timeout, and what a stop did to it is worth
recording; the handlers are Python's, so the action itself gets the default dispositions).
Only SIGKILL of the supervisor, or of the machine, still leaves an outcome unknown.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from firebreak.tools.actions import child_env, run_action
from firebreak.tools.config import RemediationAction
from firebreak.tools.redact import Redactor

MODULE = "firebreak.remediation.supervisor"
RECORD_ATTEMPTS = 4  # store writes tried (backing off 0.5, 1, 2 s) before giving up
_STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class Supervised:
    """What the supervisor needs, sent as JSON on its stdin (the redaction recipe holds
    secret values, so never argv or the environment)."""

    run_id: int
    step: int  # the run's exactly-once token while it is `phase`
    phase: str
    definition: dict[str, Any]
    parameters: dict[str, str]
    store_url: str | None  # None: nothing to record (an in-memory store is this process's own)
    redaction: dict[str, list[str]]
    output_max: int  # characters of redacted output kept


# ------------------------------------------------------------------ Firebreak's side


async def supervise(job: Supervised, *, timeout_s: float) -> tuple[bool, str]:
    """Run `job` in a supervisor and wait for its answer: (ok, redacted output).

    The answer is read from its stdout through the event loop until EOF (it has ended). When
    the caller is cancelled (Firebreak stops) only our end of that pipe closes: the supervisor
    is left to finish and record, and nothing of ours waits for it or kills it on the way out
    (an asyncio child transport would kill it). After `timeout_s` (the action's own timeout has
    long passed) it is killed and the run is a failure."""
    process = await asyncio.to_thread(_start, json.dumps(asdict(job)).encode())
    try:
        async with asyncio.timeout(timeout_s):
            answer = await _read_to_end(process)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait)
        return False, f"its supervisor did not answer within {timeout_s:g}s (killed)"
    code = await asyncio.to_thread(process.wait)
    return _answer(answer, code)


def _start(request: bytes) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", MODULE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=_supervisor_env(),
        start_new_session=True,
    )
    assert process.stdin is not None
    try:
        process.stdin.write(request)
        process.stdin.close()
    except BrokenPipeError:
        pass  # it died at start; its exit status says so
    return process


def _supervisor_env() -> dict[str, str]:
    """The action's minimal environment, plus what finds Firebreak's own code."""
    env = child_env()
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


async def _read_to_end(process: subprocess.Popen[bytes]) -> bytes:
    reader = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), process.stdout
    )
    try:
        return await reader.read()
    finally:
        transport.close()


def _answer(output: bytes, code: int) -> tuple[bool, str]:
    try:
        answer = json.loads(output.decode("utf-8", errors="replace").splitlines()[-1])
        return bool(answer["ok"]), str(answer["output"])
    except (IndexError, ValueError, KeyError, TypeError):
        return False, f"its supervisor ended with status {code} and no answer"


# ------------------------------------------------------------------ the supervisor process


def main() -> int:
    for stop in _STOPS:
        signal.signal(stop, _noted)
    job = Supervised(**json.loads(sys.stdin.buffer.read()))
    ok, output = asyncio.run(_run(job))
    recorded = _record(job, ok, output) if job.store_url else False
    try:
        print(json.dumps({"ok": ok, "output": output, "recorded": recorded}), flush=True)
    except BrokenPipeError:
        pass  # Firebreak is gone: the store has the outcome
    return 0


def _noted(signum: int, _frame: object) -> None:
    print(f"remediation supervisor: {signal.Signals(signum).name} ignored", file=sys.stderr)


async def _run(job: Supervised) -> tuple[bool, str]:
    try:
        action = RemediationAction.model_validate(job.definition)
        ok, raw = await run_action(action, job.parameters)
    except Exception as exc:  # an executor bug must still be recorded
        ok, raw = False, f"{type(exc).__name__}: {exc}"
    return ok, Redactor(**job.redaction).redact(raw)[: job.output_max]


def _record(job: Supervised, ok: bool, output: str) -> bool:
    """The outcome on the run's row; a few tries, as the store may be busy or restarting."""
    from sqlalchemy.exc import SQLAlchemyError

    from firebreak.store.db import create_sync_engine
    from firebreak.store.remediations import record_exit

    assert job.store_url is not None
    engine = create_sync_engine(job.store_url)
    try:
        for attempt in range(RECORD_ATTEMPTS):
            try:
                with engine.begin() as conn:
                    return record_exit(
                        conn, job.run_id, job.step, job.phase,
                        ok=ok, output=output, now=datetime.now(UTC),
                    )  # fmt: skip
            except SQLAlchemyError as exc:
                print(f"remediation supervisor: cannot record: {exc}", file=sys.stderr)
                if attempt + 1 < RECORD_ATTEMPTS:
                    time.sleep(0.5 * 2**attempt)
        return False
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
