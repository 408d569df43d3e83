"""The tools step's audit record: a step run again after a crash (its events committed, its
checkpoint not) does not record its calls twice; both stores."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

from sqlalchemy import select

from firebreak.agents.tool_calls import record_calls
from firebreak.agents.tool_results import ToolResult
from firebreak.incidents import transitions
from firebreak.store import dedup
from firebreak.store.models import TimelineEvent
from firebreak.store.writer import Writer


def found(query: str, *refs: str) -> ToolResult:
    return ToolResult(tool="search_logs", arguments={"query": query}, text="", refs=list(refs))


async def test_a_step_run_again_records_each_call_once(writer: Writer) -> None:
    incident_id = await writer.run(lambda conn: transitions.declare(conn, "disk full", "U1"))
    step = [("run-1:call_a", found("timeout", "L4", "L5")), ("run-1:call_b", found("oom"))]
    assert await writer.run(lambda conn: record_calls(conn, incident_id=incident_id, calls=step))
    again = [*step, ("run-1:call_c", found("disk", "L6"))]  # the rerun, one call further
    written = await writer.run(
        lambda conn: record_calls(conn, incident_id=incident_id, calls=again)
    )
    other_run = [("run-2:call_a", found("timeout", "L1"))]  # a re-investigation's ids may repeat
    written_other = await writer.run(
        lambda conn: record_calls(conn, incident_id=incident_id, calls=other_run)
    )

    def tool_events(conn):  # type: ignore[no-untyped-def]
        query = select(TimelineEvent.message, TimelineEvent.data).where(
            TimelineEvent.incident_id == incident_id, TimelineEvent.type == "TOOL_CALLED"
        )
        return conn.execute(query.order_by(TimelineEvent.id)).all()

    events = await writer.run(tool_events)
    assert written == 1 and written_other == 1
    assert [data["arguments"]["query"] for _, data in events] == [
        "timeout", "oom", "disk", "timeout",
    ]  # fmt: skip
    assert events[0].message == "Tool search_logs(query='timeout'): 2 results (L4–L5)"
    assert events[1].message == "Tool search_logs(query='oom'): nothing found"
    assert events[0].data["results"] == 2 and events[0].data["arguments"] == {"query": "timeout"}


async def test_a_call_stays_recorded_once_past_the_daily_pruning(writer: Writer) -> None:
    incident_id = await writer.run(lambda conn: transitions.declare(conn, "disk full", "U1"))
    step = [("run-1:call_a", found("timeout", "L4"))]
    assert await writer.run(lambda conn: record_calls(conn, incident_id=incident_id, calls=step))
    await asyncio.sleep(0.01)
    await writer.run(partial(dedup.prune, older_than=timedelta(0)))  # the outbox's maintenance
    again = await writer.run(lambda conn: record_calls(conn, incident_id=incident_id, calls=step))
    assert again == 0
