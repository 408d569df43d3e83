"""The RCA chart reaches the incident's Slack thread through slack-sdk's own
`files_upload_v2` (getUploadURLExternal, the bytes to the upload URL, completeUploadExternal),
against the fake Slack API over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from slack_sdk.errors import SlackApiError

from firebreak.bot.web.charts import render_png
from tests.bot.web.seed import evidence
from tests.fakes.slack_api import UPLOAD_METHOD, FakeSlackApi

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CHANNEL = "C0INCIDENTS"


@pytest.fixture
def fake_slack() -> Iterator[FakeSlackApi]:
    with FakeSlackApi() as slack:
        yield slack


async def test_files_upload_v2_puts_the_png_into_the_thread(fake_slack: FakeSlackApi) -> None:
    client = fake_slack.client()
    card = await client.chat_postMessage(channel=CHANNEL, text="incident #1")
    png = render_png(evidence(START)["metrics"][0], START)

    answer = await client.files_upload_v2(
        channel=CHANNEL,
        thread_ts=card["ts"],
        file=png,
        filename="incident-1-M1.png",
        title="M1: 5xx rate",
        alt_txt="5xx rate with the alert start marked",
        initial_comment="The alert's metric",
    )

    file_id = answer["file"]["id"]
    assert fake_slack.uploaded(file_id) == png
    assert fake_slack.last_call(UPLOAD_METHOD).params == {"file_id": file_id, "bytes": len(png)}
    asked = fake_slack.last_call("files.getUploadURLExternal").params
    assert asked["filename"] == "incident-1-M1.png" and int(asked["length"]) == len(png)
    [reply] = fake_slack.thread(CHANNEL, card["ts"])
    assert reply["text"] == "The alert's metric"
    assert [f["id"] for f in reply["files"]] == [file_id]
    assert reply["files"][0]["title"] == "M1: 5xx rate"


async def test_completing_an_upload_that_never_happened_fails(fake_slack: FakeSlackApi) -> None:
    client = fake_slack.client()
    asked = await client.files_getUploadURLExternal(filename="x.png", length=10)
    try:
        await client.files_completeUploadExternal(
            files=[{"id": asked["file_id"], "title": "x"}], channel_id=CHANNEL
        )
    except SlackApiError as exc:
        assert exc.response["error"] == "file_not_found"
    else:
        raise AssertionError("completing an upload without its bytes succeeded")
    assert fake_slack.messages(CHANNEL) == []
