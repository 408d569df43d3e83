"""Bad schedules, routing and Alertmanager settings are refused at start with one line each."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from firebreak.config import ConfigError, Secrets, load_config

GOOD = """
schedules:
  - name: payments-primary
    timezone: Europe/Berlin
    rotation: {users: [U0ALICE, U0BOB], start: "2026-11-30T09:00:00", shift_hours: 168}
    overrides:
      - {user: U0DAVE, start: "2026-12-24T00:00:00", end: "2026-12-27T00:00:00"}
  - name: sre
    ical: https://example.pagerduty.com/private/abc/feed.ics
routing:
  - {match: {team: payments}, channel: C0PAYMENTS}
alertmanager: {url: "http://alertmanager:9093/"}
escalation:
  policies:
    - name: default
      levels:
        - {notify: ["schedule:payments-primary", S0SRELEADS]}
        - {notify: ["schedule:sre"]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_a_good_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    (payments, sre) = config.schedules
    assert payments.rotation is not None and payments.rotation.users == ["U0ALICE", "U0BOB"]
    assert sre.ical_is_url and sre.ical_refresh_s == 300
    assert config.routing[0].channel == "C0PAYMENTS"
    assert config.alertmanager is not None
    assert config.alertmanager.url == "http://alertmanager:9093"
    assert config.alertmanager.durations() == [
        ("1h", timedelta(hours=1)),
        ("4h", timedelta(hours=4)),
        ("24h", timedelta(hours=24)),
    ]
    assert config.escalation.policies[0].levels[0].notify[0] == "schedule:payments-primary"


def test_the_alertmanager_token_is_a_secret_from_the_environment() -> None:
    secrets = Secrets.from_env({"FIREBREAK_ALERTMANAGER_TOKEN": "am-token"})
    assert secrets.alertmanager_token is not None
    assert "am-token" in secrets.values() and "am-token" not in repr(secrets)


ROTATION = 'rotation: {users: [U0A], start: "2026-11-30T09:00:00"}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f"schedules: [{{name: p, timezone: Europe/Berln, {ROTATION}}}]",
            "schedules.0.timezone: Value error, unknown timezone 'Europe/Berln'",
        ),
        (
            'schedules: [{name: p, rotation: {users: [], start: "2026-11-30T09:00:00"}}]',
            "schedules.0.rotation.users: Value error, a rotation needs at least one user",
        ),
        (
            'schedules: [{name: p, rotation: {users: [alice], start: "2026-11-30T09:00:00"}}]',
            "schedules.0.rotation.users.0: Value error, 'alice' is not a Slack user id",
        ),
        (
            "schedules: [{name: sre, ical: /nonexistent/sre.ics}]",
            "schedules.0.ical: Value error, cannot read iCal file /nonexistent/sre.ics: "
            "No such file or directory",
        ),
        (
            "escalation: {policies: [{name: d, levels: [{notify: [U0A]}, "
            "{notify: ['schedule:nope']}]}]}\n"
            f"schedules: [{{name: p, {ROTATION}}}]",
            "config error: escalation.policies.0.levels.1.notify: schedule:nope names no "
            "schedule (schedules: p)",
        ),
        (
            "escalation: {policies: [{name: d, levels: [{notify: ['schedule:nope']}]}]}",
            "schedule:nope names no schedule (schedules: none configured)",
        ),
        (
            f"schedules: [{{name: p, {ROTATION}}}, {{name: p, {ROTATION}}}]",
            "schedules: Value error, two schedules are named 'p'",
        ),
        ("schedules: [{name: p}]", "schedules.0: Value error, schedule 'p' needs a rotation"),
        (
            'schedules: [{name: p, rotation: {users: [U0A], start: "2026-11-30T09:00:00+01:00"}}]',
            "schedules.0.rotation.start: Value error, is a local time",
        ),
        (
            f"schedules: [{{name: p, {ROTATION}, overrides: [{{user: U0B, "
            'start: "2026-12-02T00:00:00", end: "2026-12-01T00:00:00"}]}]',
            "schedules.0.overrides.0: Value error, an override must end after it starts",
        ),
        ("routing: [{match: {team: a}, channel: payments}]", "routing.0.channel: Value error"),
        ("alertmanager: {url: alertmanager:9093}", "alertmanager.url: Value error, must be"),
        (
            "alertmanager: {url: 'http://am:9093', silence_durations: [1h, soon]}",
            "alertmanager.silence_durations.1: Value error, 'soon' is not a duration",
        ),
    ],
)
def test_bad_schedules_are_refused_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert "\n" not in str(caught.value)
    assert message in str(caught.value)


def test_an_ical_file_that_is_no_calendar_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sre.ics").write_text("<html>Sign in to continue</html>\n")
    path = write(tmp_path, f"schedules: [{{name: sre, ical: {tmp_path / 'sre.ics'}}}]")
    with pytest.raises(ConfigError, match=r"schedules\.0\.ical: .*not an iCalendar file"):
        load_config(path)
