"""`firebreak investigate --alert FILE`: one Alertmanager payload through the real pipeline.

The payload is ingested and investigated exactly as `serve` would (same store code, same
graph), but in a throw-away SQLite store, so trying Firebreak on a payload never touches the
real one. The configured sources and LLM are used.

`--sample` investigates the shipped sample incident (`examples/demo/`, made current by
`firebreak.sample`) against its own sample log and a sample Prometheus on loopback instead
of the configured sources, with the configured LLM: a way to see what an LLM makes of a known
story, with no sources set up yet.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from firebreak.components import Parts, QuietNotifier, assembled
from firebreak.config import Config, Secrets
from firebreak.sample import SampleStack, materialise, serve_sample_prometheus
from firebreak.store import incidents
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.store.schemas import IncidentOut
from firebreak.tools.sources import SourcesConfig


class InvestigateError(Exception):
    """The payload cannot be investigated (unreadable, invalid, or nothing firing)."""


def read_payload(path: str | Path) -> AlertmanagerPayload:
    try:
        return AlertmanagerPayload.model_validate_json(Path(path).read_bytes())
    except OSError as exc:
        raise InvestigateError(f"cannot read {path}: {exc.strerror}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise InvestigateError(
            f"{path} is not an Alertmanager v4 payload: {where}: {first['msg']}"
        ) from None


async def investigate(
    config: Config, secrets: Secrets, payload: AlertmanagerPayload
) -> IncidentOut:
    with tempfile.TemporaryDirectory(prefix="firebreak-investigate-") as tmp:
        config = config.model_copy(
            update={
                "store": config.store.model_copy(
                    update={"url": f"sqlite+aiosqlite:///{Path(tmp) / 'investigate.db'}"}
                ),
                "investigation": config.investigation.model_copy(
                    update={"checkpoint_path": str(Path(tmp) / "checkpoints.db")}
                ),
            }
        )
        async with assembled(config, secrets, Parts(notifier=QuietNotifier())) as runtime:
            outcome = await runtime.ingest(payload)
            if outcome.incident_id is None:
                raise InvestigateError("the payload has no firing alert: nothing to investigate")
            await runtime.investigations.wait_idle()
            async with runtime.engine.connect() as conn:
                incident = await incidents.get_incident(conn, outcome.incident_id)
    assert incident is not None
    return incident


async def investigate_sample(config: Config, secrets: Secrets) -> IncidentOut:
    """The shipped sample alert, investigated over the sample log and metrics."""
    with tempfile.TemporaryDirectory(prefix="firebreak-sample-") as tmp:
        stack = materialise(Path(tmp), datetime.now(UTC))
        async with serve_sample_prometheus(stack.series) as prometheus_url:
            sample_config = config.model_copy(
                update={"sources": sample_sources(stack, prometheus_url)}
            )
            payload = AlertmanagerPayload.model_validate(stack.payload)
            return await investigate(sample_config, secrets, payload)


def sample_sources(stack: SampleStack, prometheus_url: str) -> SourcesConfig:
    return SourcesConfig.model_validate(stack.sources(prometheus_url))
