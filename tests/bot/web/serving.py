"""The real app under uvicorn with the incident pages, seeded through the real store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial

from pydantic import SecretStr

from firebreak.config import Secrets
from firebreak.incidents import transitions
from firebreak.incidents.ingest import ingest
from firebreak.store.payloads import AlertmanagerPayload
from firebreak.store.writer import Writer
from tests.conftest import make_config
from tests.support.app import RunningApp, run_app
from tests.support.payloads import alert, group

TOKEN = "api-token-of-the-pages-tests"
NOW = datetime.now(UTC).replace(microsecond=0)
ALERT_START = NOW - timedelta(minutes=14)


def secrets(token: str | None = TOKEN, web_secret: str | None = None) -> Secrets:
    return Secrets(
        api_token=SecretStr(token) if token else None,
        web_secret=SecretStr(web_secret) if web_secret else None,
    )


@asynccontextmanager
async def serving(store_url: str, keys: Secrets | None = None) -> AsyncIterator[RunningApp]:
    async with run_app(make_config(store_url), keys if keys is not None else secrets()) as app:
        yield app


async def open_incident(
    writer: Writer, key: str, *, service: str, severity: str, resolved: bool = False
) -> int:
    """A plain incident from one alert; resolved by a person when `resolved`."""
    payload = group(key, [alert(f"{key}-1", service=service, severity=severity)])
    outcome = await writer.run(
        partial(
            ingest,
            payload=AlertmanagerPayload.model_validate(payload),
            now=NOW,
            reopen_window_s=0,
        )
    )
    assert outcome.incident_id is not None
    if resolved:
        await writer.run(
            partial(transitions.resolve, incident_id=outcome.incident_id, actor="U0BOB")
        )
    return outcome.incident_id
