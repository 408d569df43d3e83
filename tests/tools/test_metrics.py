"""One set of collectors per registry, whoever asks for it first."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from firebreak.tools.metrics import Metrics, metrics_on


def test_every_caller_on_a_registry_gets_the_same_collectors() -> None:
    registry = CollectorRegistry()
    app = Metrics(registry)
    assert metrics_on(registry) is app
    assert metrics_on(registry).breakers is app.breakers
    assert metrics_on(CollectorRegistry()) is not app


def test_the_contract_names_are_exported() -> None:
    metrics = metrics_on(CollectorRegistry())
    metrics.breakers.state.labels("llm:offline").set(0)
    metrics.breakers.transitions.labels("llm:offline", "closed", "open").inc()
    metrics.breakers.calls.labels("llm:offline", "success").inc()
    metrics.incidents_open.labels("triggered").set(1)
    text = generate_latest(metrics.registry).decode()
    for name in (
        'firebreak_circuit_breaker_state{dependency="llm:offline"}',
        'firebreak_circuit_breaker_transitions_total{dependency="llm:offline",from="closed",to="open"}',
        'firebreak_circuit_breaker_calls_total{dependency="llm:offline",outcome="success"}',
        'firebreak_incidents_open{status="triggered"}',
    ):
        assert name in text, name
