"""The `slack` section of the configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from firebreak.tools.config import Section


class SlackConfig(Section):
    mode: Literal["http", "socket", "console"] = "console"
    api_base_url: str = "https://slack.com/api/"
    channel: str = "C0INCIDENTS"
    command: str = "/incident"
    alertmanager_url: str | None = None  # for "silence / open in Alertmanager" links on cards

    @field_validator("command")
    @classmethod
    def _slash(cls, command: str) -> str:
        if not command.startswith("/") or " " in command:
            raise ValueError("must look like /incident")
        return command

    @field_validator("api_base_url")
    @classmethod
    def _trailing_slash(cls, url: str) -> str:
        return url if url.endswith("/") else url + "/"
