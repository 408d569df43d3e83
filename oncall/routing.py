"""Which channel an incident's card and thread go to: the first `routing` rule whose `match`
labels all equal the incident's, else `slack.channel`. The same first-match rule as the
escalation policies, so one mental model covers both."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from firebreak.oncall.config import RouteRule

__all__ = ["route"]


def route(labels: Mapping[str, str], default_channel: str, rules: Sequence[RouteRule]) -> str:
    """The channel of the first rule every `match` entry of which `labels` has; else
    `default_channel`. A rule with an empty `match` catches everything."""
    for rule in rules:
        if all(labels.get(key) == value for key, value in rule.match.items()):
            return rule.channel
    return default_channel
