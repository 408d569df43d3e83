"""The incident pages in real headless Chromium against the real server (uvicorn, 127.0.0.1).

What only a browser shows: the signed link's cookie survives the redirect (the DOM dumped for
the LINK's URL is the incident page), the CSP blocks nothing the page needs (Chromium logs
every violation to its console, and the log must have none), and the page is complete
without JavaScript (`--dump-dom` of a page without scripts is the server's HTML, parsed).
SQLite only: the HTTP tests next to these run both databases, and Chromium is slow enough.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firebreak.bot.web.auth import incident_link, incidents_link
from firebreak.store import incidents
from firebreak.store.schemas import EventType
from tests.bot.web.browser import devtools, dump_dom
from tests.bot.web.html import Page, parse
from tests.bot.web.seed import seed_incident
from tests.bot.web.serving import ALERT_START, NOW, open_incident, serving
from tests.support.app import RunningApp

CSP_VIOLATION = "Content Security Policy"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[RunningApp]:
    async with serving(f"sqlite+aiosqlite:///{tmp_path / 'firebreak.db'}") as running:
        yield running


async def chromium_page(url: str) -> Page:
    run = await dump_dom(url)
    assert CSP_VIOLATION not in run.stderr, run.stderr[-3000:]
    return parse(run.stdout)


async def test_the_signed_link_opens_the_incident_page(app: RunningApp) -> None:
    seeded = await seed_incident(app.runtime.writer, ALERT_START)
    link = incident_link(app.url, seeded.incident_id, app.runtime.secrets, NOW)

    page = await chromium_page(link)

    assert f"#{seeded.incident_id} {seeded.title}" in page.text
    assert page.by_id("facts") and page.by_id("rca") and page.by_id("timeline")
    assert "Release v2.14.0 of checkout" in page.text
    assert not page.find("script")
    assert_charts_and_refs(page)


def assert_charts_and_refs(page: Page) -> None:
    for ref in ("M1", "M2"):
        [svg] = page.find("svg", data_ref=ref)
        assert {"chart"} <= svg.classes
    assert len(page.find("polyline", class_="series")) == 2
    assert len(page.find("g", data_marker="alert-start")) == 2
    assert len(page.find("g", data_marker="change-point")) == 2
    cited = {e.attrs["id"] for e in page.find(class_="cited")}
    assert cited == {"ref-M1", "ref-M2", "ref-L1", "ref-L2", "ref-L3", "ref-L4"}
    assert page.by_id("ref-L5").attrs["class"] == "log"  # gathered, not cited: not highlighted
    links = {e.attrs["href"] for e in page.find("a", class_="ref")}
    assert links == {f"#{anchor}" for anchor in cited}


async def test_a_tampered_link_gets_the_401_page(app: RunningApp) -> None:
    seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
    link = incident_link(app.url, seeded.incident_id, app.runtime.secrets, NOW)
    tampered = link[:-1] + ("A" if link[-1] != "A" else "B")

    page = await chromium_page(tampered)

    assert "Session needed" in page.text and "This link is not valid" in page.text
    assert seeded.title not in page.text


async def test_no_page_without_a_session(app: RunningApp) -> None:
    seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
    for url in (f"{app.url}/incidents/{seeded.incident_id}", f"{app.url}/incidents"):
        page = await chromium_page(url)
        assert "Session needed" in page.text, url
        assert seeded.title not in page.text
        assert not page.find("table")


async def test_the_list_filters(app: RunningApp) -> None:
    seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
    writer = app.runtime.writer
    payments = await open_incident(writer, "p1", service="payments", severity="critical")
    resolved = await open_incident(
        writer, "p2", service="payments", severity="critical", resolved=True
    )
    search = await open_incident(writer, "s1", service="search", severity="warning")
    link = incidents_link(app.url, app.runtime.secrets, NOW)

    def rows(page: Page) -> list[int]:
        return [
            int(e.attrs["data-incident"]) for e in page.find("tr") if "data-incident" in e.attrs
        ]

    everything = await chromium_page(link)
    assert rows(everything) == [search, resolved, payments, seeded.incident_id]
    filtered = await chromium_page(link + "&status=triggered&service=payments")
    assert rows(filtered) == [payments]
    [chosen] = filtered.find("option", value="triggered")
    assert "selected" in chosen.attrs  # the form shows the filter in force
    assert rows(await chromium_page(link + "&severity=warning")) == [search]


async def test_a_form_submitted_in_the_browser_acts_and_comes_back(app: RunningApp) -> None:
    """A person's link, a note typed and Add note clicked, Acknowledge clicked: each posts
    the form (its CSRF token with it), and the browser lands back on the page, which shows
    it. The page itself runs no script; the clicks come from outside it."""
    incident_id = await open_incident(app.runtime.writer, "k", service="api", severity="page")
    link = incident_link(app.url, incident_id, app.runtime.secrets, NOW, person="U0ALICE")

    async with devtools() as tab:
        await tab.open(link)
        page = parse(await tab.dom())
        assert page.by_id("note") and page.by_id("acknowledge")
        assert not page.find("script")
        await tab.evaluate("document.querySelector('#note-text').value = 'rolled back v2.4.1'")
        await tab.until_loaded(tab.evaluate("document.querySelector('#note button').click()"))
        assert await tab.evaluate("location.pathname") == f"/incidents/{incident_id}"
        await tab.until_loaded(
            tab.evaluate("document.querySelector('#acknowledge button').click()")
        )
        after = parse(await tab.dom())

    assert after.find(id="acknowledge") == []  # acknowledged: the button is gone
    assert after.by_id("note") and "rolled back v2.4.1" in after.text
    assert not any(CSP_VIOLATION in line for line in tab.log)
    async with app.runtime.engine.connect() as conn:
        events = await incidents.timeline(conn, incident_id) or []
    acted = [(e.type, e.actor) for e in events if e.actor == "U0ALICE"]
    assert acted == [(EventType.NOTE, "U0ALICE"), (EventType.ACKNOWLEDGED, "U0ALICE")]
