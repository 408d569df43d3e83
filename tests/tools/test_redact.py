"""Secrets of every common shape are scrubbed; ordinary operational text is left alone."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import structlog

from firebreak.tools.config import InvestigationConfig
from firebreak.tools.models import Evidence, LogLine, MetricReading, SourceReport
from firebreak.tools.redact import REDACTED, Redactor, redact_processor
from tests.support.evidence import kube_finding

PEM = """-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aozN3tihPmljnnudb9G3HECdnH
lWu2/a1gB9JW5TBQ+AVpum9Okx7KfqkfBKL9mcHgSL0yWMdjMfNOqNtrQqKlN4kE
p6RD++7sGbzbfZ9arwrlD/HSDAWGdGGJTSOBM6pHehyLmSC3DhVQxk9sQ+6w1sEz
-----END RSA PRIVATE KEY-----"""

# (text containing a secret, the secret itself, text that must survive around it)
CASES = [
    (
        "connecting to postgres://app:Sup3rS3cret!@db.internal:5432/orders",
        "Sup3rS3cret!",
        "postgres://app:[REDACTED]@db.internal:5432/orders",
    ),
    ("redis://:hunter2hunter2@cache:6379/0 refused", "hunter2hunter2", "refused"),
    (
        "GET /v1/items Authorization: Bearer eyJraWQiOiJrMSJ9-abc.def_ghi",
        "eyJraWQiOiJrMSJ9-abc.def_ghi",
        "Authorization: Bearer",
    ),
    ("curl -H 'authorization: Basic YWRtaW46cGFzc3dvcmQ=' x", "YWRtaW46cGFzc3dvcmQ=", "curl"),
    ("retrying with token=9f8e7d6c5b4a39281706 after 3s", "9f8e7d6c5b4a39281706", "after 3s"),
    ("login ok api_key=AbCdEf0123456789xyz user=bob", "AbCdEf0123456789xyz", "user=bob"),
    ('{"user": "bob", "password": "correct horse battery"}', "correct horse", '"user": "bob"'),
    ("DB_PASSWORD=pa55word! starting", "pa55word!", "starting"),
    ("client_secret: 8a7f6e5d4c3b2a19 loaded", "8a7f6e5d4c3b2a19", "loaded"),
    ("aws key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE", "used"),
    ("session ASIAY34FZKBOKMUTVV7A expired", "ASIAY34FZKBOKMUTVV7A", "expired"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key",
    ),
    (
        "sts returned wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY for the role",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "for the role",
    ),
    (
        "jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U rejected",
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "rejected",
    ),
    (
        "slack client using xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
        "pdFZKVeTuE8sk7oOcBrzbqgy",
        "slack client using",
    ),
    ("socket mode xapp-1-A0123456789-1234567890123-abcdef0123456789", "abcdef0123456789", "socket"),
    (
        "posting to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "XXXXXXXXXXXXXXXXXXXXXXXX",
        "https://hooks.slack.com/services/",
    ),
    (
        "openai call with sk-proj-Ab3dEf6hIj9kLmN0pQrStUvWxYz123456 failed",
        "Ab3dEf6hIj9kLmN0pQrStUvWxYz123456",
        "failed",
    ),
    ("legacy key sk-1234567890abcdefghijABCDEFGHIJ used", "1234567890abcdefghij", "legacy key"),
    ("gh token ghp_16C7e42F292c6912E7710c838347Ae178B4a ok", "ghp_16C7e42F292c6912E7710c8", "ok"),
    ("alert sent to oncall.person+sre@example.co.uk by bot", "oncall.person", "by bot"),
    ("curl -H 'X-Auth: Bearer 9f8e7d6c5b4a3928' up", "9f8e7d6c5b4a3928", "X-Auth: Bearer"),
    ("retry with Bearer AbCdEfGhIjKlMnOp now", "AbCdEfGhIjKlMnOp", "now"),
    ("sent Bearer qwertyuiopasdfghjklzxc to it", "qwertyuiopasdfghjklzxc", "to it"),
    ("sent Bearer ab.cd~ef to it", "ab.cd~ef", "to it"),
    (f"loaded key\n{PEM}\nand continued", "MIIEowIBAAKCAQEA1c7", "and continued"),
    (
        "cut off: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAAS",
        "MIIEvQIBADAN",
        "cut off",
    ),
]


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(("text", "secret", "kept"), CASES)
def test_secret_is_scrubbed(redactor: Redactor, text: str, secret: str, kept: str) -> None:
    out = redactor.redact(text)
    assert secret not in out
    assert REDACTED in out
    assert kept in out
    assert redactor.redact(out) == out  # idempotent: a second pass changes nothing


ORDINARY = [
    "GET /api/v1/orders/12345 200 35ms",
    "ERROR connection refused to 10.0.3.7:5432 after 3 retries",
    "Deployment checkout-api rolled out version v2.4.1 (image sha 3f9a2bc1d4e5)",
    "commit 3f9a2bc1d4e5f60718293a4b5c6d7e8f90a1b2c3 deployed",  # 40 hex chars: a git sha
    "the password was rotated yesterday; tokens are cached for 5m",
    "max_tokens=2048 temperature=0.2",
    "java.lang.NullPointerException at com.example.OrderService.place(OrderService.java:42)",
    "user bob logged in from 192.168.1.10",
    "https://grafana.example.com/d/abc?var-service=checkout&from=now-1h",
    "AbstractSingletonProxyFactoryBeanManager initialised",
    # Prose about bearer tokens, Firebreak's own refusals among it, keeps its words.
    "missing or wrong bearer token",
    '{"error": "unauthorized", "detail": "missing or wrong bearer token"}',
    "send a Bearer token.",
    "the bearer token-based login failed",
    "",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_untouched(redactor: Redactor, text: str) -> None:
    assert redactor.redact(text) == text


def test_known_secret_values_and_extra_patterns() -> None:
    config = InvestigationConfig(redact_patterns=[r"cust-\d{6}"])
    redactor = Redactor.from_config(config, secrets=["s3cr3t-webhook-token", "abc"])
    out = redactor.redact("hook s3cr3t-webhook-token for cust-123456, abc stays (too short)")
    assert out == "hook [REDACTED] for [REDACTED], abc stays (too short)"


def test_bad_extra_pattern_is_refused_with_the_key_named() -> None:
    with pytest.raises(ValueError, match=r"investigation.redact_patterns"):
        Redactor(patterns=["(unclosed"])


def test_redact_evidence_scrubs_lines_metrics_and_errors(redactor: Redactor) -> None:
    evidence = Evidence(
        logs=[
            LogLine(ref="L1", source="loki", text="auth failed for password=hunter22", count=3),
            LogLine(ref="L2", source="loki", text="healthy"),
        ],
        metrics=[
            MetricReading(
                ref="M1",
                source="prom",
                query='up{owner="jane.doe@example.com"}',
                series={"owner": "jane.doe@example.com"},
                current=1.0,
            )
        ],
        reports=[
            SourceReport(
                source="es",
                kind="elasticsearch",
                error="ConnectError http://elastic:changeme99@es:9200",
            )
        ],
    )
    out = redactor.redact_evidence(evidence)
    dumped = out.model_dump_json()
    for secret in ("hunter22", "jane.doe", "changeme99"):
        assert secret not in dumped
    assert out.logs[0].count == 3 and out.logs[0].ref == "L1"
    assert out.logs[1].text == "healthy"
    assert out.metrics[0].current == 1.0
    assert evidence.logs[0].text.endswith("hunter22")  # the original is not mutated


def test_structlog_processor_scrubs_event_dict() -> None:
    redactor = Redactor(secrets=["tok-0123456789"])
    captured: list[dict[str, object]] = []

    def capture(logger: object, method: str, event_dict: dict[str, object]) -> str:
        captured.append(dict(event_dict))
        return "ok"

    logger = structlog.wrap_logger(
        structlog.ReturnLogger(), processors=[redact_processor(redactor), capture]
    )
    logger.info(
        "calling https://u:pw123456@api.example.com with tok-0123456789",
        api_token="anything-at-all",
        nested={"headers": ["Authorization: Bearer abcdef123456"], "count": 3},
        attempts=2,
    )
    event = captured[0]
    assert "pw123456" not in str(event["event"]) and "tok-0123456789" not in str(event["event"])
    assert event["api_token"] == REDACTED  # a key named like a secret loses its value
    assert event["nested"] == {"headers": ["Authorization: Bearer [REDACTED]"], "count": 3}
    assert event["attempts"] == 2


def test_a_refused_request_logs_its_reason_whole(redactor: Redactor) -> None:
    """The webhook's 401 log line carries the answer's body: its words must survive."""
    captured: list[dict[str, object]] = []

    def capture(logger: object, method: str, event_dict: dict[str, object]) -> str:
        captured.append(dict(event_dict))
        return "ok"

    logger = structlog.wrap_logger(
        structlog.ReturnLogger(), processors=[redact_processor(redactor), capture]
    )
    detail = '{"error":"unauthorized","detail":"missing or wrong bearer token"}'
    logger.warning("webhook rejected", reason="unauthorized", status=401, detail=detail)
    assert captured[0]["detail"] == detail


def test_fast_enough_for_every_evidence_line(redactor: Redactor) -> None:
    lines = [
        f"{datetime(2026, 1, 1, tzinfo=UTC).isoformat()} INFO GET /api/items/{i} 200 {i}ms "
        f"user=u{i} trace=4bf92f3577b34da6a3ce929d0e0e{i:04d}"
        for i in range(2000)
    ]
    began = time.perf_counter()
    for line in lines:
        redactor.redact(line)
    per_line = (time.perf_counter() - began) / len(lines)
    assert per_line < 200e-6  # well under a millisecond per line


def test_redact_evidence_scrubs_cluster_findings_and_keeps_every_list() -> None:
    finding = kube_finding("previous_log", "connecting with password=hunter2-db-secret")
    evidence = Evidence(logs=[LogLine(source="a", text="token=abc123def456")], kubernetes=[finding])
    scrubbed = Redactor().redact_evidence(evidence)
    assert "hunter2" not in scrubbed.kubernetes[0].text and REDACTED in scrubbed.kubernetes[0].text
    assert scrubbed.kubernetes[0].ref == "K1" and scrubbed.refs() == {"", "K1"}
    assert "abc123def456" not in scrubbed.logs[0].text
