"""What the graph's nodes need besides the state: passed per run, never checkpointed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from firebreak.tools.llm import LLMGateway
from firebreak.tools.redact import Redactor

if TYPE_CHECKING:
    from firebreak.app import Runtime


@dataclass(frozen=True)
class Deps:
    runtime: Runtime  # store, config, notifier, bus, remediations
    gateway: LLMGateway | None
    redactor: Redactor
    http: httpx.AsyncClient  # shared by the log and metric clients
