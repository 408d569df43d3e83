"""The incident page's forms over HTTP (httpx against uvicorn), on SQLite and PostgreSQL: a
session made for a person acknowledges, resolves and adds notes as them, behind a CSRF token;
everything else is refused, naming the problem, and changes nothing."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from firebreak.bot.web.auth import incident_link
from firebreak.store.schemas import EventType
from tests.bot.web.serving import NOW, open_incident, serving
from tests.support.app import RunningApp

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@asynccontextmanager
async def session_for(
    app: RunningApp, incident_id: int, person: str = ""
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser that opened the incident's link (made for `person`, or the card's)."""
    async with httpx.AsyncClient(base_url=app.url) as browser:
        link = incident_link(app.url, incident_id, app.runtime.secrets, NOW, person=person)
        assert (await browser.get(link)).status_code == 303
        yield browser


async def csrf_of(browser: httpx.AsyncClient, incident_id: int) -> str:
    page = await browser.get(f"/incidents/{incident_id}")
    assert page.status_code == 200
    (token,) = set(_CSRF.findall(page.text))
    return token


async def timeline(app: RunningApp, incident_id: int) -> list[tuple[str, str, str]]:
    from firebreak.store import incidents

    async with app.runtime.engine.connect() as conn:
        events = await incidents.timeline(conn, incident_id) or []
    return [(e.type, e.actor, e.message) for e in events]


async def test_a_persons_session_acts_as_them(store_url: str) -> None:
    async with serving(store_url) as app:
        incident_id = await open_incident(app.runtime.writer, "k", service="api", severity="page")
        async with session_for(app, incident_id, "U0ALICE") as browser:
            page = await browser.get(f"/incidents/{incident_id}")
            assert "As U0ALICE" in page.text
            for form in ('id="acknowledge"', 'id="resolve"', 'id="note"'):
                assert form in page.text
            csrf = await csrf_of(browser, incident_id)

            acked = await browser.post(f"/incidents/{incident_id}/acknowledge", data={"csrf": csrf})
            assert acked.status_code == 303
            assert acked.headers["location"] == f"/incidents/{incident_id}"
            noted = await browser.post(
                f"/incidents/{incident_id}/notes", data={"csrf": csrf, "text": " rolled back "}
            )
            assert noted.status_code == 303
            after = await browser.get(noted.headers["location"])
            assert 'id="acknowledge"' not in after.text and "rolled back" in after.text
            resolved = await browser.post(f"/incidents/{incident_id}/resolve", data={"csrf": csrf})
            assert resolved.status_code == 303

        events = await timeline(app, incident_id)
        assert (EventType.ACKNOWLEDGED, "U0ALICE") in [(t, a) for t, a, _ in events]
        assert (EventType.NOTE, "U0ALICE", "rolled back") in events
        assert (EventType.RESOLVED, "U0ALICE") in [(t, a) for t, a, _ in events]


async def test_forms_are_refused_naming_the_problem(store_url: str) -> None:
    async with serving(store_url) as app:
        incident_id = await open_incident(app.runtime.writer, "k", service="api", severity="page")
        other = await open_incident(app.runtime.writer, "o", service="db", severity="page")
        url = f"/incidents/{incident_id}/acknowledge"

        assert (await app.client.post(url, data={"csrf": "x"})).status_code == 401

        async with session_for(app, incident_id) as card_reader:  # the card's link
            page = await card_reader.get(f"/incidents/{incident_id}")
            assert 'name="csrf"' not in page.text and "reads only" in page.text
            nobody = await card_reader.post(url, data={"csrf": "x"})
            assert nobody.status_code == 403 and "does not say who you are" in nobody.text

        async with session_for(app, incident_id, "alice") as browser:
            missing = await browser.post(url, data={})
            assert missing.status_code == 403 and "CSRF token is missing" in missing.text
            forged = await browser.post(url, data={"csrf": "forged"})
            assert (
                forged.status_code == 403
                and "CSRF token is wrong (it does not match this session)" in forged.text
            )
            csrf = await csrf_of(browser, incident_id)
            empty = await browser.post(
                f"/incidents/{incident_id}/notes", data={"csrf": csrf, "text": "  "}
            )
            assert empty.status_code == 422 and "A note needs some text." in empty.text
            elsewhere = await browser.post(f"/incidents/{other}/acknowledge", data={"csrf": csrf})
            assert elsewhere.status_code == 401  # the session is this incident's only

        async with session_for(app, other, "bob") as bob:  # another session's token
            stolen = await bob.post(f"/incidents/{other}/acknowledge", data={"csrf": csrf})
            assert stolen.status_code == 403

        types = [t for t, _, _ in await timeline(app, incident_id) + await timeline(app, other)]
        assert EventType.ACKNOWLEDGED not in types and EventType.NOTE not in types


async def test_access_applies_to_the_persons_forms(store_url: str) -> None:
    from tests.bot.web.serving import secrets
    from tests.conftest import make_config
    from tests.support.app import run_app

    config = make_config(store_url, access={"responders": ["U0ALICE"]})
    async with run_app(config, secrets()) as app:
        incident_id = await open_incident(app.runtime.writer, "k", service="api", severity="page")
        async with session_for(app, incident_id, "U0MALLORY") as browser:
            csrf = await csrf_of(browser, incident_id)
            refused = await browser.post(
                f"/incidents/{incident_id}/acknowledge", data={"csrf": csrf}
            )
            assert refused.status_code == 403 and "U0ALICE" in refused.text
        assert EventType.ACKNOWLEDGED not in [t for t, _, _ in await timeline(app, incident_id)]


async def test_a_link_cannot_be_rewritten_for_someone_else(store_url: str) -> None:
    async with serving(store_url) as app:
        incident_id = await open_incident(app.runtime.writer, "k", service="api", severity="page")
        link = incident_link(app.url, incident_id, app.runtime.secrets, NOW, person="alice")
        scope, stamp, person, mac = link.split("token=")[1].split(".")
        bob = base64.urlsafe_b64encode(b"bob").rstrip(b"=").decode()
        assert person != bob
        for token in (f"{scope}.{stamp}.{bob}.{mac}", f"{scope}.{stamp}.{mac}"):
            forged = await app.client.get(f"/incidents/{incident_id}?token={token}")
            assert forged.status_code == 401 and "not valid" in forged.text
