"""What the Slack surface tells `/metrics`: the outbox's depth and Slack's refusals; and the
card's "firing for" kept current by the routine refresh of open cards."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client.parser import text_string_to_metric_families

from tests.bot.slack_harness import CHANNEL, FAST, SlackRig, slack_rig


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


async def test_open_cards_are_refreshed_so_firing_for_stays_current(store_url: str) -> None:
    settings = replace(FAST, card_age_refresh_s=0.5, card_interval_s=0.0)
    async with slack_rig(store_url, settings=settings) as rig:
        incident_id = await rig.alert("g1", "a")
        ts = await rig.card_ts(incident_id)
        await rig.idle()
        rig.slack.reset_calls()
        # nothing happens to the incident, yet its card is rendered again, "firing for" and all
        (update, *_) = await rig.slack.await_calls("chat.update", timeout=10)
        assert update.params["ts"] == ts and update.params["channel"] == CHANNEL
        assert "firing for" in await rig.card_text(ts, "firing for")

        await rig.alert("g1", "a", status="resolved")
        await rig.card_text(ts, "fired for")
        await rig.idle()
        rig.slack.reset_calls()
        rig.outbox._last_age_refresh = float("-inf")  # a refresh is due now
        await rig.outbox._refresh_ages()
        await rig.idle()
        assert rig.slack.calls("chat.update") == []  # resolved cards are left alone
