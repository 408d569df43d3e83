"""Which components `serve` starts, in order: Slack first (so a new incident's card goes out
before anything else happens), then investigations, then the scheduler."""

from __future__ import annotations

from firebreak.app import Component, Runtime


def default_components(runtime: Runtime) -> list[Component]:
    from firebreak.agents.runner import start_investigations
    from firebreak.bot.slack_app import start_slack
    from firebreak.scheduler import start_scheduler

    return [start_slack, start_investigations, start_scheduler]
