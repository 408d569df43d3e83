"""Forms of secrets a probe of the running bot found in clear, each scrubbed by the redactor;
and the bot's own secrets, also URL- and base64-encoded."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import pytest

from firebreak.tools.models import Evidence, LogLine
from firebreak.tools.redact import REDACTED, Redactor

# (text holding a secret, the secret, text that must survive around it)
FORMS = [
    ("starting with DB_PASS=hunter2x and pool=10", "hunter2x", "pool=10"),
    ("SECRET_KEY_BASE=9c1f0e7d3b2a rails boot", "9c1f0e7d3b2a", "rails boot"),
    ("gpg PASSPHRASE=correct-horse-9 signing", "correct-horse-9", "signing"),
    ("exec mysql --password hunter2x --host db", "hunter2x", "--host db"),
    ("exec mysql --password=hunter2x --host db", "hunter2x", "--host db"),
    ("<user>bob</user><password>hunter2x</password>", "hunter2x", "<user>bob</user>"),
    ("GET /login?user=bob&password%3Dhunter2x HTTP/1.1", "hunter2x", "HTTP/1.1"),
    (
        "GET /b/o.png?X-Amz-Credential=AKIA%2F20261201&X-Amz-Signature=fe5f80f77d5fa3beca038a24"
        " 403",
        "fe5f80f77d5fa3beca038a24",
        " 403",
    ),
    (
        "GET https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=Zm9vYmFyYmF6cXV4%3D 403",
        "Zm9vYmFyYmF6cXV4",
        "sv=2022-11-02",
    ),
    ('labels: {dbpass="hunter2x", service="checkout"}', "hunter2x", 'service="checkout"'),
    (
        "connecting to postgres://app:S3cr3t/Pa55@db:5432/orders",
        "Pa55",
        "postgres://app:[REDACTED]@db:5432/orders",
    ),
    ("password:\n  hunter2x\nuser: bob", "hunter2x", "user: bob"),
]


@pytest.mark.parametrize(("text", "secret", "kept"), FORMS)
def test_form_is_scrubbed(text: str, secret: str, kept: str) -> None:
    redactor = Redactor()
    out = redactor.redact(text)
    assert secret not in out, out
    assert REDACTED in out and kept in out, out
    assert redactor.redact(out) == out


def test_a_label_named_like_a_secret_loses_its_value() -> None:
    shown = Redactor().redact_value({"dbpass": "hunter2x", "service": "checkout"})
    assert shown == {"dbpass": REDACTED, "service": "checkout"}


def test_the_value_on_the_line_after_its_key_is_scrubbed() -> None:
    """A config dump logged line by line: the value comes as the next log line."""
    evidence = Evidence(
        logs=[
            LogLine(source="app", text="2026-12-01T10:00:00Z loaded config:"),
            LogLine(source="app", text="  password:"),
            LogLine(source="app", text="    hunter2x"),
            LogLine(source="app", text="  user: bob"),
        ]
    )
    texts = [line.text for line in Redactor().redact_evidence(evidence).logs]
    assert texts == [
        "2026-12-01T10:00:00Z loaded config:",
        "  password:",
        f"    {REDACTED}",
        "  user: bob",
    ]


TOKEN = "fb-api-Tok3n/with+odd=chars&more"


@pytest.mark.parametrize(
    "shown",
    [
        TOKEN,
        quote(TOKEN, safe=""),
        quote_plus(TOKEN),
        base64.b64encode(TOKEN.encode()).decode(),
        base64.urlsafe_b64encode(TOKEN.encode()).decode(),
        base64.b64encode(TOKEN.encode()).decode().rstrip("="),
    ],
    ids=["verbatim", "url", "url-plus", "base64", "base64-url", "base64-unpadded"],
)
def test_our_own_secret_is_scrubbed_in_every_encoding(shown: str) -> None:
    out = Redactor(secrets=[TOKEN]).redact(f"GET /x?t={shown} from 10.0.0.1")
    assert shown not in out and REDACTED in out and out.endswith(" from 10.0.0.1"), out


@pytest.mark.parametrize("prefix", ["", "u:", "us:", "use:"])
def test_our_own_secret_is_scrubbed_inside_a_larger_base64_blob(prefix: str) -> None:
    """`Basic base64(user:token)`: the token's encoding depends on where it starts."""
    blob = base64.b64encode(f"{prefix}{TOKEN}".encode()).decode()
    out = Redactor(secrets=[TOKEN]).redact(f"Authorisation header was {blob} then")
    middle = base64.b64encode(TOKEN.encode()).decode()[4:-4]
    assert blob not in out and middle[:8] not in out, out


def test_ordinary_words_near_the_new_keys_survive() -> None:
    redactor = Redactor()
    for text in (
        "prompt_tokens=1800 completion_tokens=300 max_tokens=2048",
        "the password was rotated; pass the ball",
        "signal=SIGTERM exit=137",
        "<title>checkout</title>",
        "GET /search?q=password+reset 200",
    ):
        assert redactor.redact(text) == text, text
