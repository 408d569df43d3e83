"""Routing: the first rule whose labels all match picks the channel; no match, the default."""

from __future__ import annotations

from firebreak.oncall.config import RouteRule
from firebreak.oncall.routing import route

RULES = [
    RouteRule(match={"team": "payments", "env": "prod"}, channel="C0PAYPROD"),
    RouteRule(match={"team": "payments"}, channel="C0PAYMENTS"),
    RouteRule(match={"severity": "critical"}, channel="C0CRITICAL"),
]


def test_first_matching_rule_wins() -> None:
    labels = {"team": "payments", "env": "prod", "severity": "critical"}
    assert route(labels, "C0INCIDENTS", RULES) == "C0PAYPROD"
    assert route({"team": "payments", "env": "dev"}, "C0INCIDENTS", RULES) == "C0PAYMENTS"
    assert route({"team": "search", "severity": "critical"}, "C0INCIDENTS", RULES) == "C0CRITICAL"


def test_every_label_must_be_equal_and_no_match_goes_to_the_default() -> None:
    assert route({"env": "prod"}, "C0INCIDENTS", RULES) == "C0INCIDENTS"
    assert route({"team": "Payments"}, "C0INCIDENTS", RULES) == "C0INCIDENTS"
    assert route({}, "C0INCIDENTS", RULES) == "C0INCIDENTS"
    assert route({"team": "payments"}, "C0INCIDENTS", []) == "C0INCIDENTS"


def test_an_empty_match_catches_everything() -> None:
    rules = [*RULES, RouteRule(channel="C0REST")]
    assert route({"team": "search"}, "C0INCIDENTS", rules) == "C0REST"
