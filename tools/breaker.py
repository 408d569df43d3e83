"""Circuit breakers, one per dependency: pybreaker's state machine plus the rules it lacks.

pybreaker (1.4) is the state machine: it counts consecutive failures, opens at `fail_max`,
re-opens when a half-open trial fails, closes after `success_threshold` trial successes,
keeps its counters in a `CircuitBreakerStorage` (`_Storage`) and tells listeners
(`_Transitions`) about every transition, which become metrics and log lines here.
`Breaker` adds, around it, what pybreaker has no place for (README "Circuit breakers" says
why each is ours):

- asyncio. `Breaker.call(fn)` awaits `fn()` itself, then books the outcome with
  `CircuitBreaker.call(_book, outcome)`, which returns or raises as the call did.
  pybreaker books an outcome only as the result of a call it makes (`call_async` needs
  Tornado, `call(async_fn)` never sees the coroutine fail, and `with cb.calling():` books
  whatever leaves the block), so it cannot tell a cancellation (nothing learnt: not booked)
  from a failure, nor count a slow answer as failed while the caller still gets it.
- Admission. pybreaker decides "may this call go?" inside the call itself, so the open to
  half-open move (after `reset_timeout_s`, on an injectable clock) is made here through
  pybreaker's `half_open()`, and `half_open_max_calls` permits bound the trials in flight
  (pybreaker lets any number through).
- Slow calls (`slow_call_s`): the answer is returned to the caller and counted as a failure.
- Failure rate: a sliding window of `window_s` (in 10 buckets); once it holds `min_calls`
  calls, a failed share of at least `failure_rate` opens the breaker (`CircuitBreaker.open()`).
- A success while closed with no consecutive failure counted changes nothing in pybreaker and
  is not booked (the cheap common case).
- Epochs: an outcome whose call began under an earlier state is not booked (an answer sent
  before the breaker opened says nothing about the half-open trial).
- Operator control: `force_open` (holds until `close` or `reset`), `close`, `reset`.
  `BreakerBoard` keeps every breaker by name and shares those actions between replicas through
  a `ForcedStateStore` (implemented in store/breakers.py; tools never import store).

Errors are classified once (tools/errors.py): `bad_request` answers are not failures. A
breaker belongs to one event loop: its own bookkeeping takes no lock. Its collectors are
declared in tools/metrics.py.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Literal, Protocol, TypeVar, get_args

import pybreaker
import structlog
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field

from firebreak.tools.errors import Category, CircuitOpenError, Failure, classify
from firebreak.tools.metrics import BreakerMetrics, metrics_on

__all__ = [
    "ACTIONS",
    "SOURCE_BREAKER",
    "STATE_VALUES",
    "Action",
    "Breaker",
    "BreakerBoard",
    "BreakerConfig",
    "BreakerStatus",
    "ForcedStateStore",
    "StoredAction",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]
Action = Literal["open", "close", "reset"]
ACTIONS: tuple[str, ...] = get_args(Action)

CLOSED, HALF_OPEN, OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_HALF_OPEN, pybreaker.STATE_OPEN
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
OUTCOMES = ("success", "failure", "slow", "rejected")
BUCKETS = 10


class BreakerConfig(BaseModel):
    """`llm.circuit_breaker`, and a source's `circuit_breaker` (contract "Circuit breakers")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_max: int = Field(5, ge=1)  # consecutive failures that open it
    failure_rate: float = Field(0.5, gt=0, le=1)  # or this share of failed calls ...
    window_s: float = Field(60, gt=0)  # ... within this window ...
    min_calls: int = Field(10, ge=1)  # ... once it holds this many calls
    slow_call_s: float = Field(20, gt=0)  # a call slower than this counts as failed
    reset_timeout_s: float = Field(60, gt=0)  # open -> half-open
    half_open_max_calls: int = Field(1, ge=1)  # trial calls let through while half-open


# A source's default: a query taking half the default source timeout (10 s) counts as failed.
SOURCE_BREAKER = BreakerConfig(slow_call_s=5)


class BreakerStatus(BaseModel):
    """One breaker as `GET /api/v1/breakers` shows it; counts cover the window."""

    name: str
    state: str  # closed | half-open | open
    failures: int
    calls: int
    failure_rate: float
    opened_at: datetime | None
    forced: bool = False
    consecutive_failures: int = 0


# --------------------------------------------------------------------------------------------
# Storage shared between replicas (store/breakers.py implements it)


class StoredAction(Protocol):
    """The latest operator action on one breaker; `version` grows with every write."""

    @property
    def name(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def by(self) -> str: ...


class ForcedStateStore(Protocol):
    async def load(self) -> Sequence[StoredAction]:
        """Every breaker's latest stored action."""
        ...

    async def save(self, name: str, action: str, by: str) -> int:
        """Store `action` as `name`'s latest; the new version."""
        ...


class _Bound:
    """One dependency's metric children, looked up once (labels() costs a lock and a dict)."""

    def __init__(self, metrics: BreakerMetrics, dependency: str) -> None:
        self._metrics = metrics
        self._dependency = dependency
        self.state = metrics.state.labels(dependency)
        self.forced = metrics.forced.labels(dependency)
        self.duration = metrics.duration.labels(dependency)
        self.outcome = {name: metrics.calls.labels(dependency, name) for name in OUTCOMES}
        self.error = {kind: metrics.errors.labels(dependency, kind) for kind in Category}

    def transition(self, old: str, new: str) -> None:
        self._metrics.transitions.labels(self._dependency, old, new).inc()
        self.state.set(STATE_VALUES[new])

    def action(self, action: str) -> None:
        self._metrics.actions.labels(self._dependency, action).inc()


# --------------------------------------------------------------------------------------------
# pybreaker extension points


class _Storage(pybreaker.CircuitMemoryStorage):
    """pybreaker's memory storage that also notes, on the breaker's clock, when it opened:
    pybreaker stamps `opened_at` with the wall clock, the reset timeout is timed here."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(CLOSED)
        self._clock = clock
        self.opened_tick = 0.0

    @property
    def opened_at(self) -> datetime | None:
        return self._opened_at

    @opened_at.setter
    def opened_at(self, value: datetime) -> None:
        self._opened_at = value
        self.opened_tick = self._clock()


class _Transitions(pybreaker.CircuitBreakerListener):
    def __init__(self, breaker: Breaker) -> None:
        self._breaker = breaker

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._breaker._changed(old_state.name if old_state else CLOSED, new_state.name)


class _Failed(Exception):
    """A failed call's outcome as pybreaker books it (a new one each time: a raised instance
    keeps every traceback it went through)."""


def _book(failed: bool) -> None:
    """What `CircuitBreaker.call` runs to book a finished call: it fails as the call did."""
    if failed:
        raise _Failed


class _Window:
    """Calls and failures of the last `span_s` seconds, to a tenth of it (ring of buckets)."""

    __slots__ = ("_calls", "_fails", "_ticks", "_width")

    def __init__(self, span_s: float) -> None:
        self._width = span_s / BUCKETS
        self._ticks = [-1] * BUCKETS
        self._calls = [0] * BUCKETS
        self._fails = [0] * BUCKETS

    def add(self, now: float, failed: bool) -> None:
        tick = int(now // self._width)
        slot = tick % BUCKETS
        if self._ticks[slot] != tick:
            self._ticks[slot] = tick
            self._calls[slot] = 0
            self._fails[slot] = 0
        self._calls[slot] += 1
        if failed:
            self._fails[slot] += 1

    def totals(self, now: float) -> tuple[int, int]:
        """(calls, failures) in the window ending at `now`."""
        oldest = int(now // self._width) - BUCKETS + 1
        calls = fails = 0
        for slot in range(BUCKETS):
            if self._ticks[slot] >= oldest:
                calls += self._calls[slot]
                fails += self._fails[slot]
        return calls, fails

    def clear(self) -> None:
        self._ticks = [-1] * BUCKETS


# --------------------------------------------------------------------------------------------
# The breaker


class Breaker:
    """A circuit breaker for one dependency (`llm:openai`, a source's name). See the module doc.

    Every transition is logged (`circuit_breaker_state`, a warning when it opens) with its
    `reason`: to open `consecutive`, `rate`, `slow`, `trial_failed` or `operator_open`; to
    half-open `reset_timeout`; to closed `trial_succeeded`, `operator_close` or `operator_reset`.
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        metrics: BreakerMetrics | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock
        self._window = _Window(self.config.window_s)
        self._storage = _Storage(clock)
        self._metrics = _Bound(metrics or metrics_on(CollectorRegistry()).breakers, name)
        self._epoch = 0  # bumped by every transition
        self._trials = 0  # half-open trial calls in flight
        self._forced = False
        self._reason = "consecutive"  # why the transition about to happen happens
        self._cb = pybreaker.CircuitBreaker(
            fail_max=self.config.fail_max,
            reset_timeout=self.config.reset_timeout_s,
            success_threshold=self.config.half_open_max_calls,
            listeners=[_Transitions(self)],
            state_storage=self._storage,
            name=name,
            throw_new_error_on_trip=False,
        )
        self._metrics.state.set(STATE_VALUES[CLOSED])
        self._metrics.forced.set(0)

    # -- reading -----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """`closed`, `half-open` or `open` (open until the first call after the timeout)."""
        return self._cb.current_state

    @property
    def forced(self) -> bool:
        return self._forced

    @property
    def consecutive_failures(self) -> int:
        return self._cb.fail_counter

    def refusal(self) -> str | None:
        """Why a call made now would be refused without being sent, or None if it would go."""
        if self._forced:
            return "is forced open by an operator"
        state = self._storage.state
        if state == OPEN:
            wait = self.config.reset_timeout_s - (self._clock() - self._storage.opened_tick)
            if wait > 0:
                return f"is open (next trial call in {math.ceil(wait)}s)"
        elif state == HALF_OPEN and self._trials >= self.config.half_open_max_calls:
            return "is half-open and its trial calls are in flight"
        return None

    def status(self) -> BreakerStatus:
        calls, failures = self._window.totals(self._clock())
        state = self.state
        return BreakerStatus(
            name=self.name,
            state=state,
            failures=failures,
            calls=calls,
            failure_rate=round(failures / calls, 4) if calls else 0.0,
            opened_at=self._storage.opened_at if state != CLOSED else None,
            forced=self._forced,
            consecutive_failures=self.consecutive_failures,
        )

    # -- calling -----------------------------------------------------------------------------

    async def call(
        self, fn: Callable[[], Awaitable[T]], *, slow: Callable[[T, float], bool] | None = None
    ) -> T:
        """`await fn()` under the breaker. Raises `CircuitOpenError` without calling `fn`
        when refused; otherwise `fn`'s result or exception, unchanged (a slow answer is
        returned, and counted as a failure). `slow(result, seconds)` judges an answer that
        took longer than `slow_call_s`: a dependency whose every answer is slow by nature
        (a model on a CPU) says so there, and only answers slow for it count."""
        epoch, trial = self._admit()
        started = self._clock()
        try:
            result = await fn()
        except Exception as exc:
            self._finish(epoch, trial, self._clock() - started, classify(exc))
            raise
        except BaseException:  # cancelled from outside: nothing learnt about the dependency
            self._release(epoch, trial)
            raise
        elapsed = self._clock() - started
        was_slow = elapsed > self.config.slow_call_s and (slow is None or slow(result, elapsed))
        self._finish(epoch, trial, elapsed, None, slow=was_slow)
        return result

    def _admit(self) -> tuple[int, bool]:
        refusal = self.refusal()
        if refusal is not None:
            self._metrics.outcome["rejected"].inc()
            self._metrics.error[Category.CIRCUIT_OPEN].inc()
            raise CircuitOpenError(self.name, refusal)
        state = self._storage.state
        if state == OPEN:  # the reset timeout has passed: this call is a trial
            self._reason = "reset_timeout"
            self._cb.half_open()
            state = HALF_OPEN
        if state == HALF_OPEN:
            self._trials += 1
            return self._epoch, True
        return self._epoch, False

    def _release(self, epoch: int, trial: bool) -> None:
        if trial and epoch == self._epoch:
            self._trials -= 1

    def _finish(
        self,
        epoch: int,
        trial: bool,
        elapsed: float,
        failure: Failure | None,
        *,
        slow: bool = False,
    ) -> None:
        self._metrics.duration.observe(elapsed)
        if failure is None:
            failed = slow
            outcome = "slow" if failed else "success"
        else:
            self._metrics.error[failure.category].inc()
            failed = failure.category.counts_against_dependency
            outcome = "failure" if failed else "success"  # a refused request: it answered
        self._metrics.outcome[outcome].inc()
        self._release(epoch, trial)
        if epoch != self._epoch:
            return  # began under an earlier state: says nothing about this one
        now = self._clock()
        self._window.add(now, failed)
        if not failed:
            if trial or self._storage.counter:  # closed with no failure counted: a no-op
                self._reason = "trial_succeeded"
                self._cb.call(_book, False)
            return
        self._reason = "slow" if failure is None else "trial_failed" if trial else "consecutive"
        try:
            self._cb.call(_book, True)
        except _Failed:
            pass
        if self._storage.state == CLOSED and self._rate_exceeded(now):
            self._reason = "rate"
            self._cb.open()

    def _rate_exceeded(self, now: float) -> bool:
        calls, failures = self._window.totals(now)
        return calls >= self.config.min_calls and failures >= self.config.failure_rate * calls

    def _changed(self, old: str, new: str) -> None:
        """pybreaker moved (listener): a new epoch, metrics, a log line with the reason."""
        if old == new:
            return  # pybreaker re-announces a state it re-enters (close() while closed)
        self._epoch += 1
        self._trials = 0
        if new == CLOSED and self._reason == "trial_succeeded":
            self._window.clear()  # recovered: the failures before are history
        self._metrics.transition(old, new)
        calls, failures = self._window.totals(self._clock())
        event = log.warning if new == OPEN else log.info
        event(
            "circuit_breaker_state",
            dependency=self.name,
            old=old,
            new=new,
            reason=self._reason,
            consecutive_failures=self._cb.fail_counter,
            window_calls=calls,
            window_failures=failures,
        )

    # -- operator control --------------------------------------------------------------------

    def apply(self, action: str, *, by: str = "operator") -> None:
        """An operator action: `open` (held until close or reset), `close` (now, keeping the
        window: a dependency still failing re-opens it), `reset` (closed, counts forgotten)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown breaker action {action!r} (one of {', '.join(ACTIONS)})")
        self._reason = f"operator_{action}"
        if action == "open":
            self._forced = True
            if self._storage.state != OPEN:
                self._cb.open()
        else:
            self._forced = False
            if action == "reset":
                self._window.clear()
            self._cb.close()
        self._metrics.forced.set(1 if self._forced else 0)
        self._metrics.action(action)
        log.warning("circuit_breaker_operator", dependency=self.name, action=action, by=by)


# --------------------------------------------------------------------------------------------
# Every breaker of the process


class BreakerBoard:
    """The process's breakers by name, with the operators' actions shared between replicas.

    Built once in the composition root and passed to whoever calls a dependency. Forced
    states reach the other replicas through `store` when their `sync()` runs (see
    `sync_forever`); calls never wait on the store. Each replica logs and counts the actions it
    applies, so `firebreak_circuit_breaker_operator_actions_total` moves on every replica.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        store: ForcedStateStore | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.metrics = metrics_on(registry or CollectorRegistry()).breakers
        self._store = store
        self._clock = clock
        self._breakers: dict[str, Breaker] = {}
        self._applied: dict[str, int] = {}  # stored version applied, by breaker name
        self._synced = False

    def add(self, name: str, config: BreakerConfig | None = None) -> Breaker:
        """A new breaker `name`; two dependencies never share one (ValueError)."""
        if name in self._breakers:
            raise ValueError(f"a circuit breaker named {name!r} exists already")
        breaker = Breaker(name, config, metrics=self.metrics, clock=self._clock)
        self._breakers[name] = breaker
        return breaker

    def get(self, name: str) -> Breaker | None:
        return self._breakers.get(name)

    def __iter__(self) -> Iterator[Breaker]:
        return iter(self._breakers.values())

    def __len__(self) -> int:
        return len(self._breakers)

    def statuses(self) -> list[BreakerStatus]:
        return [breaker.status() for breaker in self._breakers.values()]

    async def act(self, name: str, action: str, *, by: str = "operator") -> BreakerStatus:
        """Apply an operator action here and store it for every replica. KeyError for an
        unknown breaker, ValueError for an unknown action; nothing changes then."""
        breaker = self._breakers[name]
        if action not in ACTIONS:
            raise ValueError(f"unknown breaker action {action!r} (one of {', '.join(ACTIONS)})")
        if self._store is not None:
            self._applied[name] = await self._store.save(name, action, by)
        breaker.apply(action, by=by)
        return breaker.status()

    async def sync(self) -> None:
        """Apply the actions other replicas stored since the last sync. The first sync (at
        start) applies only forced opens: a stored close or reset has nothing to undo then."""
        if self._store is None:
            return
        for stored in await self._store.load():
            breaker = self._breakers.get(stored.name)
            if breaker is None or self._applied.get(stored.name) == stored.version:
                continue
            self._applied[stored.name] = stored.version
            if self._synced or stored.action == "open":
                breaker.apply(stored.action, by=f"{stored.by} (another replica)")
        self._synced = True

    async def sync_forever(self, interval_s: float = 5.0) -> None:
        """`sync()` every `interval_s` until cancelled; a failed read is logged and retried."""
        while True:
            try:
                await self.sync()
            except Exception as exc:  # the store is down: keep the last known forced states
                log.warning("circuit_breaker_sync_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(interval_s)
