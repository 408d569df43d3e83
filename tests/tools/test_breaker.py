"""The circuit breaker's state machine under a fake clock: consecutive failures, failure rate in
a sliding window, slow calls, half-open trial permits, operator control, metrics and logs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from firebreak.tools.breaker import Breaker, BreakerBoard, BreakerConfig
from firebreak.tools.errors import Category, CircuitOpenError, SourceError, classify
from firebreak.tools.metrics import metrics_on


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Down(Exception):
    """What the dependency raises in these tests: an unexpected error, so a failure."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def make(clock: FakeClock, registry: CollectorRegistry, **settings: Any) -> Breaker:
    defaults: dict[str, Any] = {"min_calls": 1000}  # the rate rule off unless a test wants it
    config = BreakerConfig(**(defaults | settings))
    return Breaker("dep", config, metrics=metrics_on(registry).breakers, clock=clock)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"dependency": "dep", **labels}) or 0.0


async def ok() -> str:
    return "answer"


async def down() -> str:
    raise Down("boom")


def taking(clock: FakeClock, seconds: float, result: str = "late answer") -> Callable[[], Any]:
    async def call() -> str:
        clock.advance(seconds)
        return result

    return call


async def fail(breaker: Breaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Down):
            await breaker.call(down)


async def succeed(breaker: Breaker, times: int = 1) -> None:
    for _ in range(times):
        assert await breaker.call(ok) == "answer"


async def refused(breaker: Breaker) -> CircuitOpenError:
    called = False

    async def spy() -> str:
        nonlocal called
        called = True
        return "reached"

    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(spy)
    assert not called  # refused without reaching the dependency
    return caught.value


def reasons(logs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (e["old"], e["new"], e["reason"]) for e in logs if e["event"] == "circuit_breaker_state"
    ]


# --- opening -----------------------------------------------------------------------------------


async def test_opens_after_fail_max_consecutive_failures(clock, registry):
    breaker = make(clock, registry, fail_max=3)
    with capture_logs() as logs:
        await fail(breaker, 2)
        assert breaker.state == "closed" and breaker.consecutive_failures == 2
        await fail(breaker)  # the third one trips it; its own error still reaches the caller
    assert breaker.state == "open"
    error = await refused(breaker)
    assert str(error).startswith("circuit open: dep is open")
    assert classify(error).category is Category.CIRCUIT_OPEN
    assert reasons(logs) == [("closed", "open", "consecutive")]
    assert sample(registry, "firebreak_circuit_breaker_state") == 2
    assert sample(registry, "firebreak_circuit_breaker_calls_total", outcome="failure") == 3
    assert sample(registry, "firebreak_circuit_breaker_calls_total", outcome="rejected") == 1
    assert sample(registry, "firebreak_circuit_breaker_errors_total", category="prolonged") == 3
    assert sample(registry, "firebreak_circuit_breaker_errors_total", category="circuit_open") == 1
    transitions = "firebreak_circuit_breaker_transitions_total"
    assert sample(registry, transitions, **{"from": "closed", "to": "open"}) == 1
    assert sample(registry, "firebreak_circuit_breaker_call_seconds_count") == 3  # not rejected


async def test_a_success_resets_the_consecutive_count(clock, registry):
    breaker = make(clock, registry, fail_max=3)
    await fail(breaker, 2)
    await succeed(breaker)
    await fail(breaker, 2)
    assert breaker.state == "closed" and breaker.consecutive_failures == 2


async def test_failure_rate_opens_once_the_window_holds_min_calls(clock, registry):
    breaker = make(clock, registry, fail_max=100, failure_rate=0.5, min_calls=10)
    with capture_logs() as logs:
        for _ in range(4):
            await fail(breaker)
            await succeed(breaker)
        await fail(breaker)  # 5 of 9: above the rate, but fewer calls than min_calls
        assert breaker.state == "closed"
        await succeed(breaker)  # 5 of 10: a success never opens it
        assert breaker.state == "closed"
        await fail(breaker)  # 6 of 11
    assert breaker.state == "open"
    assert reasons(logs) == [("closed", "open", "rate")]
    status = breaker.status()
    assert (status.calls, status.failures, status.failure_rate) == (11, 6, round(6 / 11, 4))


async def test_the_window_forgets_failures_older_than_window_s(clock, registry):
    breaker = make(clock, registry, fail_max=100, failure_rate=0.5, min_calls=10, window_s=60)
    await fail(breaker, 4)
    clock.advance(70)  # not a multiple of the bucket width: the old bucket is not reused
    await succeed(breaker, 6)
    await fail(breaker, 4)  # 4 of 10 now; counting the old four it would be 8 of 14
    assert breaker.state == "closed"
    assert (breaker.status().calls, breaker.status().failures) == (10, 4)


async def test_refused_requests_are_not_failures(clock, registry):
    breaker = make(clock, registry, fail_max=2)

    async def bad_query() -> str:
        raise SourceError("HTTP 400: parse error", status_code=400)

    for _ in range(5):
        with pytest.raises(SourceError):
            await breaker.call(bad_query)
    assert breaker.state == "closed" and breaker.consecutive_failures == 0
    assert sample(registry, "firebreak_circuit_breaker_errors_total", category="bad_request") == 5
    assert sample(registry, "firebreak_circuit_breaker_calls_total", outcome="success") == 5


# --- slow calls --------------------------------------------------------------------------------


async def test_slow_answers_are_used_and_counted_as_failures(clock, registry):
    breaker = make(clock, registry, fail_max=3, slow_call_s=3)
    with capture_logs() as logs:
        assert await breaker.call(taking(clock, 2.9, "quick enough")) == "quick enough"
        assert breaker.consecutive_failures == 0
        for _ in range(3):
            assert await breaker.call(taking(clock, 40)) == "late answer"  # still the answer
    assert breaker.state == "open"
    assert reasons(logs) == [("closed", "open", "slow")]
    assert sample(registry, "firebreak_circuit_breaker_calls_total", outcome="slow") == 3
    assert sample(registry, "firebreak_circuit_breaker_calls_total", outcome="success") == 1
    assert sample(registry, "firebreak_circuit_breaker_call_seconds_sum") == pytest.approx(122.9)


# --- half-open ---------------------------------------------------------------------------------


async def test_half_opens_after_reset_timeout_and_closes_on_a_good_trial(clock, registry):
    breaker = make(clock, registry, fail_max=1, reset_timeout_s=30)
    with capture_logs() as logs:
        await fail(breaker)
        clock.advance(29)
        assert "next trial call in 1s" in str(await refused(breaker))
        clock.advance(1)
        await succeed(breaker)  # the trial
    assert breaker.state == "closed"
    assert reasons(logs) == [
        ("closed", "open", "consecutive"),
        ("open", "half-open", "reset_timeout"),
        ("half-open", "closed", "trial_succeeded"),
    ]
    assert sample(registry, "firebreak_circuit_breaker_state") == 0


async def test_a_failed_trial_reopens_for_another_reset_timeout(clock, registry):
    breaker = make(clock, registry, fail_max=1, reset_timeout_s=30)
    with capture_logs() as logs:
        await fail(breaker)
        clock.advance(30)
        await fail(breaker)  # the trial fails
        assert breaker.state == "open"
        clock.advance(29)
        await refused(breaker)  # timed from the re-opening, not the first opening
    assert reasons(logs)[-1] == ("half-open", "open", "trial_failed")


async def test_half_open_lets_only_max_calls_through(clock, registry):
    breaker = make(clock, registry, fail_max=1, reset_timeout_s=10, half_open_max_calls=2)
    await fail(breaker)
    clock.advance(10)
    release = asyncio.Event()

    async def held() -> str:
        await release.wait()
        return "answer"

    trials = [asyncio.create_task(breaker.call(held)) for _ in range(2)]
    await asyncio.sleep(0)
    assert breaker.state == "half-open"
    error = await refused(breaker)  # a third call while both trials are in flight
    assert "trial calls are in flight" in str(error)
    release.set()
    assert await asyncio.gather(*trials) == ["answer", "answer"]
    assert breaker.state == "closed"  # both trials succeeded (success threshold = permits)


async def test_a_cancelled_trial_proves_nothing_and_frees_its_permit(clock, registry):
    breaker = make(clock, registry, fail_max=1, reset_timeout_s=10)
    await fail(breaker)
    clock.advance(10)
    trial = asyncio.create_task(breaker.call(lambda: asyncio.sleep(3600)))
    await asyncio.sleep(0)
    await refused(breaker)  # the one permit is taken
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert breaker.state == "half-open"  # neither closed nor re-opened by the cancellation
    await succeed(breaker)  # the permit is free again
    assert breaker.state == "closed"


async def test_an_answer_begun_before_the_breaker_opened_does_not_close_it(clock, registry):
    breaker = make(clock, registry, fail_max=2)
    release = asyncio.Event()

    async def held() -> str:
        await release.wait()
        return "answer"

    early = asyncio.create_task(breaker.call(held))
    await asyncio.sleep(0)
    await fail(breaker, 2)
    assert breaker.state == "open"
    release.set()
    assert await early == "answer"
    assert breaker.state == "open"


# --- operator control --------------------------------------------------------------------------


async def test_forced_open_holds_until_close(clock, registry):
    breaker = make(clock, registry, reset_timeout_s=10)
    with capture_logs() as logs:
        breaker.apply("open", by="U0OPS")
        clock.advance(3600)
        error = await refused(breaker)  # no trial call while forced
        assert "forced open by an operator" in str(error)
        assert breaker.status().forced
        breaker.apply("close", by="U0OPS")
    await succeed(breaker)
    assert breaker.state == "closed" and not breaker.forced
    operator = [(e["action"], e["by"]) for e in logs if e["event"] == "circuit_breaker_operator"]
    assert operator == [("open", "U0OPS"), ("close", "U0OPS")]
    assert reasons(logs) == [
        ("closed", "open", "operator_open"),
        ("open", "closed", "operator_close"),
    ]
    actions = "firebreak_circuit_breaker_operator_actions_total"
    assert sample(registry, actions, action="open") == 1
    assert sample(registry, actions, action="close") == 1
    assert sample(registry, "firebreak_circuit_breaker_forced") == 0


async def test_close_keeps_the_window_and_reset_forgets_it(clock, registry):
    settings = {"fail_max": 100, "failure_rate": 0.5, "min_calls": 4}
    closed, reset = make(clock, registry, **settings), make(clock, CollectorRegistry(), **settings)
    for breaker in (closed, reset):
        await succeed(breaker, 2)
        await fail(breaker, 2)
        assert breaker.state == "open"
    closed.apply("close")
    reset.apply("reset")
    await fail(closed)  # 3 of 5 in the window: open again at once
    await fail(reset)  # 1 of 1, fewer than min_calls
    assert (closed.state, reset.state) == ("open", "closed")
    assert reset.status().calls == 1


async def test_a_bad_action_changes_nothing(clock, registry):
    breaker = make(clock, registry)
    with pytest.raises(ValueError, match="unknown breaker action 'explode'"):
        breaker.apply("explode")
    assert breaker.state == "closed" and not breaker.forced


# --- the board ---------------------------------------------------------------------------------


async def test_board_names_breakers_once_and_reports_them(clock, registry):
    board = BreakerBoard(registry=registry, clock=clock)
    llm = board.add("llm:openai", BreakerConfig(fail_max=1))
    board.add("loki")
    with pytest.raises(ValueError, match="exists already"):
        board.add("loki")
    await fail(llm)
    statuses = {s.name: s for s in board.statuses()}
    assert statuses["llm:openai"].state == "open" and statuses["llm:openai"].opened_at
    assert statuses["loki"].model_dump(mode="json") == {
        "name": "loki",
        "state": "closed",
        "failures": 0,
        "calls": 0,
        "failure_rate": 0.0,
        "opened_at": None,
        "forced": False,
        "consecutive_failures": 0,
    }
    assert board.get("nope") is None and len(board) == 2
    with pytest.raises(KeyError):
        await board.act("nope", "open")
    with pytest.raises(ValueError):
        await board.act("loki", "explode")
    assert (await board.act("loki", "open")).forced


def test_breakers_share_one_registry(clock, registry):
    board = BreakerBoard(registry=registry, clock=clock)
    board.add("a")
    Breaker("b", metrics=metrics_on(registry).breakers)  # the same set, found again
    assert registry.get_sample_value("firebreak_circuit_breaker_state", {"dependency": "a"}) == 0
    assert registry.get_sample_value("firebreak_circuit_breaker_state", {"dependency": "b"}) == 0
