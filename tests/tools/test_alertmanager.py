"""Silences against the real Alertmanager (Debian's, started on loopback by tests/support).

A bearer token is checked on a tiny recording server instead: Alertmanager itself has no
authentication, it sits behind a proxy that does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from firebreak.tools.alertmanager import (
    AlertmanagerClient,
    AlertmanagerConfig,
    AlertmanagerError,
    parse_duration,
)
from tests.support.http import Answer, Seen, serving
from tests.support.promstack import free_port, run_alertmanager

pytestmark = pytest.mark.integration

GROUP = {"alertname": "CheckoutErrors", "service": "checkout"}


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("am")
    with run_alertmanager(workdir, webhook_url="http://127.0.0.1:9/unused") as url:
        yield url


async def test_create_read_and_expire_a_silence(alertmanager: str) -> None:
    now = datetime.now(UTC)
    async with AlertmanagerClient(alertmanager) as am:
        silence_id = await am.create_silence(
            GROUP, now, now + timedelta(hours=4), "U0ALICE", "Silenced from incident #12"
        )
        silence = await am.get_silence(silence_id)
        assert silence.state == "active"
        assert silence.created_by == "U0ALICE" and silence.comment == "Silenced from incident #12"
        assert {(m.name, m.value, m.is_regex, m.is_equal) for m in silence.matchers} == {
            ("alertname", "CheckoutErrors", False, True),
            ("service", "checkout", False, True),
        }
        assert abs(silence.ends_at - (now + timedelta(hours=4))) < timedelta(seconds=1)

        await am.expire_silence(silence_id)
        assert (await am.get_silence(silence_id)).state == "expired"
        await am.expire_silence(silence_id)  # again: still fine


async def test_alertmanager_listed_silences_match_what_was_sent(alertmanager: str) -> None:
    now = datetime.now(UTC)
    async with AlertmanagerClient(alertmanager) as am:
        silence_id = await am.create_silence(
            {"team": "search"}, now, now + timedelta(hours=1), "U0B", "x"
        )
    async with httpx.AsyncClient() as http:
        answer = await http.get(
            f"{alertmanager}/api/v2/silences", params={"filter": 'team="search"'}
        )
    listed = answer.json()
    assert [s["id"] for s in listed] == [silence_id]


async def test_a_refusal_names_what_alertmanager_said(alertmanager: str) -> None:
    now = datetime.now(UTC)
    async with AlertmanagerClient(alertmanager) as am:
        with pytest.raises(AlertmanagerError) as caught:
            await am.create_silence(GROUP, now, now - timedelta(hours=1), "U0ALICE", "backwards")
        assert caught.value.reason == "refused" and caught.value.status == 400
        assert str(caught.value) == (
            "Alertmanager refused to create the silence (HTTP 400): "
            "Failed to create silence: start time must be before end time"
        )
        with pytest.raises(AlertmanagerError) as caught:
            await am.create_silence({"team": ""}, now, now + timedelta(hours=1), "U0A", "empty")
        assert "at least one matcher must not match the empty string" in str(caught.value)
        with pytest.raises(AlertmanagerError, match="the group has no labels"):
            await am.create_silence({}, now, now + timedelta(hours=1), "U0ALICE", "nothing")


async def test_unknown_silences_are_not_found(alertmanager: str) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    async with AlertmanagerClient(alertmanager) as am:
        for call in (am.get_silence, am.expire_silence):
            with pytest.raises(AlertmanagerError) as caught:
                await call(unknown)
            assert caught.value.reason == "not_found"
            assert str(caught.value).endswith("no such silence")
        with pytest.raises(AlertmanagerError) as caught:
            await am.expire_silence("not-a-uuid")
        assert caught.value.reason == "refused" and "must be of type uuid" in str(caught.value)


async def test_describe_reads_the_version_and_cluster_state(alertmanager: str) -> None:
    async with AlertmanagerClient(alertmanager) as am:
        line = await am.describe()
    # gossip is off in tests (`--cluster.listen-address=`), so the cluster is "disabled"
    assert line.startswith("alertmanager 0.") and line.endswith(
        f"at {alertmanager}, cluster disabled"
    )


async def test_describe_refuses_what_is_not_alertmanager() -> None:
    with serving(lambda request: (200, "application/json", b'{"status": "success"}')) as url:
        async with AlertmanagerClient(url) as am:
            with pytest.raises(AlertmanagerError) as caught:
                await am.describe()
    assert caught.value.reason == "bad_answer"
    assert str(caught.value) == f"{url} answered, but not as Alertmanager's v2 API"


async def test_alertmanager_down_is_said_so() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    now = datetime.now(UTC)
    async with AlertmanagerClient(url) as am:
        with pytest.raises(AlertmanagerError) as caught:
            await am.create_silence(GROUP, now, now + timedelta(hours=1), "U0ALICE", "down")
    assert caught.value.reason == "unreachable"
    assert str(caught.value) == f"Alertmanager at {url} is down or unreachable (ConnectError)"


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A stand-in for an authenticating proxy: records headers, refuses a wrong token."""
    seen: list[dict[str, str]] = []

    def respond(request: Seen) -> Answer:
        seen.append(request.headers)
        ok = request.headers.get("Authorization") == "Bearer am-token"
        body = json.dumps({"silenceID": "s-1"} if ok else "bad credentials").encode()
        return (200 if ok else 401), "application/json", body

    with serving(respond) as url:
        yield url, seen


async def test_the_bearer_token_is_sent_and_never_shown(
    proxy: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = proxy
    now = datetime.now(UTC)
    config = AlertmanagerConfig(url=url)
    async with AlertmanagerClient.from_config(config, "am-token") as am:
        assert await am.create_silence(GROUP, now, now + timedelta(hours=1), "U0A", "x") == "s-1"
    assert seen[-1]["Authorization"] == "Bearer am-token"
    async with AlertmanagerClient(url, token="wrong-token") as am:
        with pytest.raises(AlertmanagerError) as caught:
            await am.create_silence(GROUP, now, now + timedelta(hours=1), "U0A", "x")
    assert caught.value.reason == "refused" and caught.value.status == 401
    assert "FIREBREAK_ALERTMANAGER_TOKEN" in str(caught.value)
    assert "wrong-token" not in str(caught.value) and "wrong-token" not in repr(caught.value)
    async with AlertmanagerClient(url) as am:  # no token: no header at all
        with pytest.raises(AlertmanagerError):
            await am.create_silence(GROUP, now, now + timedelta(hours=1), "U0A", "x")
    assert "Authorization" not in seen[-1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(minutes=90)),
        (" 4H ", timedelta(hours=4)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "4", "h", "1.5h", "-1h", "0m", "400d", "1 h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|at most 366d|longer than 0"):
        parse_duration(text)
