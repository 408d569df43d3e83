"""What the Slack surface tells `/metrics`: the outbox's depth and Slack's refusals; and the
card's "firing for" kept current by the routine refresh of open cards."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.bot.slack_harness import SlackRig, slack_rig


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


async def scraped(rig: SlackRig, method: str, error: str) -> str | None:
    """/metrics once it counts a failed `method` call with `error`."""
    metrics = (await rig.client.get("/metrics")).text
    counted = sample(metrics, "firebreak_slack_api_errors_total", method=method, error=error)
    return metrics if counted else None


async def test_outbox_depth_and_slack_errors_on_metrics(store_url: str) -> None:
    async with slack_rig(store_url) as rig:
        rig.slack.outage = True  # every Slack call answers 503
        await rig.alert("g1", "a")
        metrics = await rig.wait(
            lambda: scraped(rig, "chat.postMessage", "service_unavailable")
        )  # once slack-sdk's own retries gave up
        depth = sample(metrics, "firebreak_slack_outbox_pending")
        assert depth is not None and depth >= 1  # the card is still waiting

        rig.slack.outage = False
        await rig.idle()
        metrics = (await rig.client.get("/metrics")).text
        assert sample(metrics, "firebreak_slack_outbox_pending") == 0

        rig.slack.api_error("chat.update", "msg_too_long")
        await rig.alert("g1", "a", "b")  # a card refresh Slack refuses once
        metrics = await rig.wait(lambda: scraped(rig, "chat.update", "msg_too_long"))
        refused = sample(
            metrics, "firebreak_slack_api_errors_total", method="chat.update", error="msg_too_long"
        )
        assert refused == 1
