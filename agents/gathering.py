"""What the log, metrics and Kubernetes agents share: every configured source of their kind
fetched at once. A source that fails does not fail the investigation: its `fetch` never
raises, its error is in its report for the timeline, and the other sources' evidence is used."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from firebreak.tools.config import InvestigationConfig
from firebreak.tools.models import AlertContext, SourceReport


class Fetching(Protocol):
    async def fetch(
        self, alert: AlertContext, investigation: InvestigationConfig
    ) -> tuple[Sequence[Any], SourceReport]: ...


async def fetch_every(
    sources: Sequence[Fetching], alert: AlertContext, investigation: InvestigationConfig, key: str
) -> dict[str, Any]:
    """The state update: what every source found under `key`, and every source's report."""
    results = await asyncio.gather(*(source.fetch(alert, investigation) for source in sources))
    found = [item for items, _ in results for item in items]
    return {key: found, "reports": [report for _, report in results]}
