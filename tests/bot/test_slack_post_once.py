"""A message is never posted twice when the store fails between the post and its record.

The record fails through a trigger on `slack_messages` (or on the outbox rows), installed
before the post and dropped later: Slack has the message, the store does not know it yet.
Slack is the fake server (tests/fakes/slack_api.py), with message timestamps of today, as
Slack's are (the card is looked for in the channel's recent history)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, event

from firebreak.bot.slack_outbox import CARD_EVENT, OutboxSettings
from firebreak.store.writer import Writer
from tests.bot.slack_harness import CHANNEL, SlackRig, slack_rig
from tests.fakes.slack_api import FakeSlackApi

# Failures of the record are not Slack refusing: enough attempts that none is given up here.
PATIENT = OutboxSettings(backoff_initial_s=0.05, backoff_max_s=0.2, poll_s=0.1, max_attempts=100)


@contextmanager
def slack_of_today() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(start_ts=int(time.time())) as slack:
        yield slack


def _trigger_sql(dialect: str, table: str, event: str) -> tuple[list[str], list[str]]:
    """(create, drop) statements for a trigger that fails every `event` on `table`."""
    if dialect == "sqlite":
        create = [
            f"CREATE TRIGGER fail_record BEFORE {event} ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'injected: the record fails'); END"
        ]
        return create, ["DROP TRIGGER fail_record"]
    create = [
        "CREATE FUNCTION fail_record() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'injected: the record fails'; END $$",
        f"CREATE TRIGGER fail_record BEFORE {event} ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION fail_record()",
    ]
    return create, [f"DROP TRIGGER fail_record ON {table}", "DROP FUNCTION fail_record()"]


async def failing_records(writer: Writer, table: str, *, on: bool, event: str = "INSERT") -> None:
    def run(conn: Connection) -> None:
        create, drop = _trigger_sql(conn.dialect.name, table, event)
        for statement in create if on else drop:
            conn.exec_driver_sql(statement)

    await writer.run(run)


async def _record_failed_after_post(rig: SlackRig, posts: int) -> None:
    """Slack got `posts` messages and the record has failed at least twice since."""
    await rig.wait(lambda: len(rig.slack.calls("chat.postMessage", ok=True)) >= posts)
    failures = rig.outbox.failures
    await rig.wait(lambda: rig.outbox.failures >= failures + 2)


async def test_a_card_whose_record_fails_is_posted_once(store_url: str) -> None:
    with slack_of_today() as slack:
        async with slack_rig(store_url, slack=slack, settings=PATIENT) as rig:
            await failing_records(rig.runtime.writer, "slack_messages", on=True)
            incident_id = await rig.alert("g1", "a")
            await _record_failed_after_post(rig, posts=1)
            await failing_records(rig.runtime.writer, "slack_messages", on=False)
            ts = await rig.card_ts(incident_id)
            await rig.alert("g1", "b")  # the card is kept current: updated, not posted
            await rig.card_text(ts, "checkout-b")
            await rig.idle()

    posts = slack.calls("chat.postMessage", ok=True)
    assert len(posts) == 1, [p.params.get("text") for p in posts]
    assert posts[0].response["ts"] == ts
    assert posts[0].params["metadata"]["event_type"] == CARD_EVENT
    assert slack.calls("conversations.history") == []  # it knew; it did not need to look
    assert len(slack.messages(CHANNEL)) == 1


async def test_a_thread_reply_whose_record_fails_is_posted_once(store_url: str) -> None:
    with slack_of_today() as slack:
        async with slack_rig(store_url, slack=slack, settings=PATIENT) as rig:
            incident_id = await rig.alert("g1", "a")
            ts = await rig.card_ts(incident_id)
            await rig.idle()
            await failing_records(rig.runtime.writer, "slack_messages", on=True)
            rig.outbox.say_in_thread(incident_id, "Paging <@U0ONCALL>", purpose="page")
            await _record_failed_after_post(rig, posts=2)
            await failing_records(rig.runtime.writer, "slack_messages", on=False)
            await rig.idle()

    assert [m["text"] for m in slack.thread(CHANNEL, ts)] == ["Paging <@U0ONCALL>"]


async def test_a_direct_message_whose_row_cannot_be_marked_done_is_sent_once(
    store_url: str,
) -> None:
    done = "UPDATE OF status"  # marking the row done fails; rescheduling it does not
    with slack_of_today() as slack:
        async with slack_rig(store_url, slack=slack, settings=PATIENT) as rig:
            await failing_records(rig.runtime.writer, "slack_outbox", on=True, event=done)
            await rig.outbox.enqueue_dm("U0ALICE", "You are on call for payments-primary")
            await _record_failed_after_post(rig, posts=1)
            await failing_records(rig.runtime.writer, "slack_outbox", on=False, event=done)
            await rig.idle()
    assert len(slack.calls("chat.postMessage", ok=True)) == 1


async def test_after_a_crash_the_card_is_found_in_slack_not_posted_again(store_url: str) -> None:
    """The process that posted the card stopped before the record could commit: the next
    one finds the card in the channel by the key in its metadata."""
    with slack_of_today() as slack:
        async with slack_rig(store_url, slack=slack, settings=PATIENT) as rig:
            await failing_records(rig.runtime.writer, "slack_messages", on=True)
            incident_id = await rig.alert("g1", "a")
            await _record_failed_after_post(rig, posts=1)
        for other in range(3):  # the channel goes on meanwhile
            slack.post_as_user(CHANNEL, f"anyone else seeing this? ({other})")
        async with slack_rig(store_url, slack=slack, settings=PATIENT) as rig:
            await failing_records(rig.runtime.writer, "slack_messages", on=False)
            ts = await rig.card_ts(incident_id)
            await rig.idle()

    posts = slack.calls("chat.postMessage", ok=True)
    assert len(posts) == 1 and posts[0].response["ts"] == ts
    history = slack.calls("conversations.history", ok=True)
    assert history and history[0].params["include_all_metadata"] in ("1", "true", True)


@pytest.mark.parametrize("refusal", ["missing_scope", "not_in_channel"])
async def test_a_card_slack_will_not_let_us_look_for_is_posted_again(
    store_url: str, refusal: str
) -> None:
    """Without `channels:history` the earlier attempt cannot be found: at least once, as
    before, rather than never."""
    with slack_of_today() as slack:
        async with slack_rig(store_url, slack=slack, settings=PATIENT) as rig:
            await failing_records(rig.runtime.writer, "slack_messages", on=True)
            incident_id = await rig.alert("g1", "a")
            await _record_failed_after_post(rig, posts=1)
        slack.api_error("conversations.history", refusal, times=10)
        async with slack_rig(store_url, slack=slack, settings=PATIENT) as rig:
            await failing_records(rig.runtime.writer, "slack_messages", on=False)
            ts = await rig.card_ts(incident_id)
    posts = slack.calls("chat.postMessage", ok=True)
    assert len(posts) == 2 and posts[1].response["ts"] == ts


async def test_a_message_told_while_the_store_is_away_goes_out_once_it_is_back(
    tmp_path: Path,
) -> None:
    """`tell` returns at once; its row waits for the store instead of being lost. The store
    is a SQLite file capped at its size (`max_page_count`), as a full disk would."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'firebreak.db'}"
    with slack_of_today() as slack:
        async with slack_rig(url, slack=slack, settings=PATIENT) as rig:
            incident_id = await rig.alert("g1", "a")
            ts = await rig.card_ts(incident_id)
            await rig.idle()
            room = {"free": False}

            @event.listens_for(rig.runtime.writer.engine, "begin")
            def cap(conn: Connection) -> None:
                pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
                limit = 1_000_000 if room["free"] else pages
                conn.exec_driver_sql(f"PRAGMA max_page_count={limit}")

            rig.outbox.say_in_thread(
                incident_id, "Resolved by U0ALICE " + "x" * 20_000, purpose="r"
            )
            await rig.wait(lambda: rig.runtime.writer.health.failing)
            await asyncio.sleep(1.0)
            room["free"] = True
            await rig.wait(lambda: slack.thread(CHANNEL, ts), within=15)
            await rig.idle()

    assert [m["text"][:20] for m in slack.thread(CHANNEL, ts)] == ["Resolved by U0ALICE "]
