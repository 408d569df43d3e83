"""Leads: the incident's own errors, the one that says most, and whether a change is tied to
what failed. The same findings the offline analysis writes from and the model is shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from firebreak.agents.leads import excerpt_around, find
from firebreak.agents.offline import analyze_offline
from firebreak.tools.evidence import build_evidence, is_error, signature
from firebreak.tools.models import AlertContext, Evidence, LogLine, MetricReading

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
ALERT = AlertContext(
    labels={"alertname": "HighErrorRate", "service": "shipping"},
    annotations={"summary": "shipping 5xx above 5%"},
    starts_at=T0,
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def line(minutes: float, text: str, count: int = 1, source: str = "app") -> LogLine:
    return LogLine(source=source, timestamp=at(minutes), text=text, count=count)


def evidence(lines: list[LogLine], metrics: list[MetricReading] = ()) -> Evidence:
    return build_evidence(lines, metrics, [], 50_000, starts_at=T0)


CERT = (
    'ERROR shipping address validation failed: Post "https://addr-validate.internal:8443/v2/'
    'validate": tls: failed to verify certificate: x509: certificate has expired or is not yet '
    "valid: current time 2026-11-22T09:58:00Z is after 2026-11-22T09:57:00Z"
)


def test_an_unrelated_change_before_the_errors_is_not_blamed() -> None:
    ev = evidence(
        [
            line(-5, "INFO shipping config reload: carrier rate table rates-q4.yaml applied"),
            *[line(-2 + i / 10, CERT) for i in range(7)],
            *[
                line(-2, f'WARN shipping POST /v1/quotes status=502 carrier=ups error="{i}"')
                for i in range(3)
            ],
        ]
    )
    findings = find(ALERT, ev)
    assert findings.change is not None and not findings.change_linked
    assert "nothing in it names what failed" in findings.leads()[0].text
    rca = analyze_offline(ALERT, ev)
    assert rca.root_cause.startswith("Most likely a credential or certificate problem")
    assert "certificate has expired" in rca.root_cause, "the cut keeps what is wrong"
    assert "rate table" not in rca.root_cause, "the red herring is in the reasoning only"
    assert "Nothing in it names what failed" in rca.reasoning
    assert rca.confidence_score < 70


def test_a_deploy_of_the_alerts_own_service_is_tied_to_its_errors() -> None:
    ev = evidence(
        [
            line(-6, "INFO deploy shipping v3.1.0 complete"),
            *[
                line(-3, f"ERROR shipping order {i}: NullPointerException in Quote.total")
                for i in range(10)
            ],
        ]
    )
    findings = find(ALERT, ev)
    assert findings.change_linked
    rca = analyze_offline(ALERT, ev)
    assert rca.root_cause.startswith("Probably a regression introduced by the change")
    assert rca.confidence_score == 60  # error (25), its kind (5), a tied change (20); no metric


def test_a_deploy_of_another_service_is_not_tied() -> None:
    ev = evidence(
        [
            line(-20, "INFO argocd app=checkout-web deploy checkout-web 8.1.0 complete"),
            *[
                line(-3, f"ERROR shipping upstream carrier-api timeout after 10000ms req {i}")
                for i in range(10)
            ],
        ]
    )
    assert not find(ALERT, ev).change_linked


def test_the_most_specific_error_says_most_not_the_most_frequent() -> None:
    ev = evidence(
        [
            *[
                line(-1, f"WARN orders-api POST /v1/orders status=503 error=unavailable {i}")
                for i in range(30)
            ],
            line(-3, 'ERROR orders-db could not extend file "base/1/2": No space left on device'),
        ]
    )
    findings = find(ALERT, ev)
    assert findings.telling is not None and "No space left" in findings.telling.text
    assert findings.category is not None and findings.category.name == "disk exhaustion"


def test_errors_long_before_the_onset_are_not_the_incidents() -> None:
    early = line(-25, 'FATAL password authentication failed for user "reporting"', count=5)
    ev = evidence(
        [early, line(-2, "ERROR connection pool exhausted (active=10/10)", count=20)],
        [
            MetricReading(
                ref="",
                source="prom",
                query="pool_in_use",
                baseline=5,
                current=10,
                peak=10,
                changed_at=at(-3),
                points=100,
            )
        ],
    )
    findings = find(ALERT, ev)
    assert findings.onset == at(-3)
    assert findings.first_error is not None and "pool exhausted" in findings.first_error.text


def test_a_signature_seen_before_and_during_the_incident_belongs_to_it() -> None:
    """A bug a few users hit before the flag went to everyone: first seen long before the
    onset, and then all through the incident."""
    bug = "ERROR pricing quote failed: java.lang.NullPointerException in PricingEngine.quote"
    lines = [line(-40, bug), *[line(-2 + i / 10, bug) for i in range(20)]]
    lines.append(line(-5, "WARN pricing slow cache get 900ms", count=40))
    merged = evidence(lines)
    (grouped,) = [item for item in merged.logs if "NullPointer" in item.text]
    assert grouped.count == 21 and grouped.last == at(-2 + 1.9)
    findings = find(ALERT, merged)
    assert findings.telling is not None and "NullPointerException" in findings.telling.text


def test_a_job_that_failed_long_before_the_alert_fired_is_found() -> None:
    ev = Evidence(
        logs=[line(-3, 'WARN batch window: writes paused error="paused"', count=8)],
        metrics=[
            MetricReading(
                ref="M1",
                source="prom",
                query="kube_job_status_failed",
                baseline=0,
                current=1,
                peak=1,
                changed_at=at(-19),
                points=100,
            )
        ],
    )
    crashed = line(
        -19,
        'last 3 lines of the terminated export container: /bin/sh: syntax error: unexpected "fi"',
    )
    ev = ev.model_copy(update={"logs": [*ev.logs, crashed.model_copy(update={"ref": "L9"})]})
    findings = find(ALERT, ev)
    assert findings.telling is not None and "syntax error" in findings.telling.text


def test_a_count_of_nothing_is_not_an_error_and_query_strings_collapse() -> None:
    assert not is_error("Complete; 0 active, 1 succeeded, 0 failed of 1 completions")
    assert is_error("2 failed of 3 completions")
    assert signature("GET /api/search?q=boots&page=2 status=200") == signature(
        "GET /api/search?q=kids&page=9 status=200"
    )


def test_a_long_line_is_cut_around_what_is_wrong() -> None:
    cut = excerpt_around(CERT, 120)
    assert len(cut) <= 120
    assert cut.startswith("ERROR shipping address validation")
    assert "certificate has expired" in cut
    assert excerpt_around("short line", 120) == "short line"
