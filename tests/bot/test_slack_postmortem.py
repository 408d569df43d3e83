"""`/incident postmortem ID`: the draft in the incident's thread, as a Markdown message, or as
a file (files.getUploadURLExternal, the upload, files.completeUploadExternal) when it is longer
than a message may be; all through the outbox."""

from __future__ import annotations

from firebreak.bot.messages.rca import POSTMORTEM_MESSAGE_MAX, postmortem_comment
from tests.bot.slack_harness import CHANNEL, SlackRig, slack_rig
from tests.support.slack_signing import slash_command


async def command(rig: SlackRig, text: str) -> str:
    response = await rig.post(slash_command(text, response_url=rig.slack.response_url()))
    assert response.status_code == 200, response.text
    if response.content and response.json().get("text"):
        return response.json()["text"]
    answer = rig.slack.wait_for("response_url")[-1]  # it took longer: answered later
    return str(answer.params.get("text"))


async def test_a_short_draft_is_a_markdown_reply_in_the_thread(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        card = await rig.card_ts(incident_id)
        answer = await command(rig, f"postmortem {incident_id}")
        await rig.idle()
        replies = rig.slack.thread(CHANNEL, card)
        events = await rig.timeline(incident_id)

    assert "posted in its thread" in answer and "template" in answer
    drafts = [m for m in replies if (m.get("blocks") or [{}])[0].get("type") == "markdown"]
    assert len(drafts) == 1
    text = drafts[0]["blocks"][0]["text"]
    assert text.startswith(f"# Postmortem draft: #{incident_id}")
    assert "## Impact" in text and "## Action items" in text
    assert [e.actor for e in events if e.type == "POSTMORTEM_DRAFTED"] == ["U0ALICE"]


async def test_a_long_draft_is_shared_as_a_file(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        incident_id = await rig.alert("g1", "a")
        card = await rig.card_ts(incident_id)
        for n in range(60):
            await rig.runtime.incidents.add_note(incident_id, "U0BOB", f"step {n}: " + "x" * 280)
        answer = await command(rig, f"postmortem {incident_id}")
        await rig.idle()
        replies = rig.slack.thread(CHANNEL, card)
        completed = rig.slack.calls("files.completeUploadExternal", ok=True)

    assert "posted in its thread" in answer
    shared = [m for m in replies if m.get("files")]
    assert len(shared) == 1 and len(completed) == 1
    file = shared[0]["files"][0]
    assert file["name"] == f"postmortem-{incident_id}.md"
    content = rig.slack.uploaded(file["id"]).decode()
    assert len(content) > POSTMORTEM_MESSAGE_MAX
    assert content.startswith(f"# Postmortem draft: #{incident_id}") and "step 59" in content
    assert shared[0]["text"] == postmortem_comment(incident_id)


async def test_unknown_incident_and_missing_id(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        missing = await command(rig, "postmortem 999")
        usage = await command(rig, "postmortem")
    assert "no incident" in missing.lower()
    assert "postmortem ID" in usage
