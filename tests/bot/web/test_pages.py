"""The incident pages over HTTP (httpx against uvicorn on 127.0.0.1), on SQLite and PostgreSQL:
sessions and their edges, headers, errors, filters and paging, what the page shows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, update

from firebreak.bot.web import auth
from firebreak.bot.web.auth import incident_link, incidents_link
from firebreak.store.models import AnalysisRecord
from tests.bot.web.html import Page, parse
from tests.bot.web.seed import evidence, seed_incident
from tests.bot.web.serving import ALERT_START, NOW, TOKEN, open_incident, secrets, serving

HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def assert_secure(response: httpx.Response) -> None:
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, name
    if response.headers.get("content-type", "").startswith("text/html"):
        assert "<script" not in response.text.lower()
        assert " style=" not in response.text.lower()  # the CSP forbids inline styles too


async def test_a_signed_link_becomes_a_session_for_that_incident(store_url: str) -> None:
    async with serving(store_url) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START)
        other = await open_incident(app.runtime.writer, "other", service="api", severity="info")
        link = incident_link(app.url, seeded.incident_id, app.runtime.secrets, NOW)
        assert "?token=" in link

        redirect = await app.client.get(link)

        assert redirect.status_code == 303
        assert redirect.headers["location"] == f"/incidents/{seeded.incident_id}"
        assert_secure(redirect)
        cookie = redirect.headers["set-cookie"]
        assert cookie.startswith(f"firebreak_session_{seeded.incident_id}=")
        attributes = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "samesite=lax", f"path=/incidents/{seeded.incident_id}"} <= attributes
        assert "secure" not in attributes  # plain http here
        page = await app.client.get(redirect.headers["location"])  # the client keeps the cookie
        assert page.status_code == 200
        assert seeded.title in page.text
        assert_secure(page)
        # the session is this incident's: not the list, not another incident
        assert (await app.client.get("/incidents")).status_code == 401
        assert (await app.client.get(f"/incidents/{other}")).status_code == 401
        session = app.client.cookies[auth.cookie_name(str(seeded.incident_id))]
        stolen = {auth.cookie_name(str(other)): session}  # this incident's session, renamed
        async with httpx.AsyncClient(base_url=app.url, cookies=stolen) as stranger:
            assert (await stranger.get(f"/incidents/{other}")).status_code == 401


async def test_the_cookie_is_secure_over_https(store_url: str) -> None:
    async with serving(store_url) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
        link = incident_link(app.url, seeded.incident_id, app.runtime.secrets, NOW)
        # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (a TLS-terminating proxy)
        redirect = await app.client.get(link, headers={"X-Forwarded-Proto": "https"})
        attributes = {p.strip().lower() for p in redirect.headers["set-cookie"].split(";")}
        assert "secure" in attributes


async def test_the_list_link_opens_every_page_and_keeps_the_filters(store_url: str) -> None:
    async with serving(store_url) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
        link = incidents_link(app.url, app.runtime.secrets, NOW) + "&status=triggered"
        redirect = await app.client.get(link)
        assert redirect.headers["location"] == "/incidents?status=triggered"
        assert "path=/incidents;" in redirect.headers["set-cookie"].lower()
        assert (await app.client.get("/incidents")).status_code == 200
        assert (await app.client.get(f"/incidents/{seeded.incident_id}")).status_code == 200


@pytest.mark.parametrize(
    "spoil",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature
        lambda t: "2" + t[1:],  # another incident's scope
        lambda t: t.replace(t.split(".")[1], str(int(t.split(".")[1]) + 60)),  # later expiry
        lambda t: "",
        lambda t: "a.b",
        lambda t: "1.99999999999999999999.x",
        lambda t: "all." + ".".join(t.split(".")[1:]),
    ],
)
async def test_tampered_tokens_get_the_401_page(
    store_url: str, spoil: Callable[[str], str]
) -> None:
    async with serving(store_url) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
        assert seeded.incident_id == 1
        token = incident_link(app.url, 1, app.runtime.secrets, NOW).split("token=")[1]
        refused = await app.client.get("/incidents/1", params={"token": spoil(token)})
        assert refused.status_code == 401
        assert "set-cookie" not in refused.headers
        assert "This link is not valid" in refused.text
        assert seeded.title not in refused.text
        assert_secure(refused)


async def test_expired_links_and_sessions_get_401(store_url: str) -> None:
    async with serving(store_url) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
        old = incident_link(
            app.url, seeded.incident_id, app.runtime.secrets, NOW - timedelta(days=8)
        )
        refused = await app.client.get(old)
        assert refused.status_code == 401 and "has expired" in refused.text
        key = auth.signing_key(app.runtime.secrets)
        assert key is not None
        stale = auth.sign(key, auth.SESSION, str(seeded.incident_id), NOW - timedelta(seconds=1))
        cookies = {auth.cookie_name(str(seeded.incident_id)): stale}
        async with httpx.AsyncClient(base_url=app.url, cookies=cookies) as client:
            assert (await client.get(f"/incidents/{seeded.incident_id}")).status_code == 401
        # a link token is not a session token (different purpose, same key)
        fresh = incident_link(app.url, seeded.incident_id, app.runtime.secrets, NOW)
        cookies = {auth.cookie_name(str(seeded.incident_id)): fresh.split("token=")[1]}
        async with httpx.AsyncClient(base_url=app.url, cookies=cookies) as client:
            assert (await client.get(f"/incidents/{seeded.incident_id}")).status_code == 401


async def test_no_session_no_page_but_the_api_token_opens_it(store_url: str) -> None:
    async with serving(store_url) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
        page = f"/incidents/{seeded.incident_id}"
        for path in (page, "/incidents", "/incidents/99999"):  # 401 before any lookup
            refused = await app.client.get(path)
            assert refused.status_code == 401, path
            assert seeded.title not in refused.text
            assert_secure(refused)
        wrong = await app.client.get(page, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await app.client.get(page, headers=bearer)).status_code == 200
        assert (await app.client.get("/incidents", headers=bearer)).status_code == 200


async def test_a_web_secret_signs_instead_of_the_api_token(store_url: str) -> None:
    keys = secrets(web_secret="a-separate-web-secret")
    async with serving(store_url, keys) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
        made_with_token_only = incident_link(app.url, seeded.incident_id, secrets(), NOW)
        assert (await app.client.get(made_with_token_only)).status_code == 401
        good = incident_link(app.url, seeded.incident_id, keys, NOW)
        assert (await app.client.get(good)).status_code == 303


async def test_without_a_token_the_pages_are_open(store_url: str) -> None:
    async with serving(store_url, secrets(token=None)) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
        link = incident_link(app.url, seeded.incident_id, app.runtime.secrets, NOW)
        assert link == f"{app.url}/incidents/{seeded.incident_id}"  # nothing to sign with
        page = await app.client.get(link)
        assert page.status_code == 200 and seeded.title in page.text
        assert_secure(page)
        listing = await app.client.get("/incidents")
        assert listing.status_code == 200 and seeded.title in listing.text
        assert_secure(listing)


async def test_bad_ids_get_a_404_page(store_url: str) -> None:
    async with serving(store_url, secrets(token=None)) as app:
        for path in (
            "/incidents/abc",
            "/incidents/99999",
            "/incidents/-1",
            "/incidents/1" + "0" * 30,
        ):
            missing = await app.client.get(path)
            assert missing.status_code == 404, path
            assert missing.headers["content-type"].startswith("text/html")
            assert "No such incident" in missing.text
            assert_secure(missing)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("status=bogus", "status must be one of triggered, acknowledged, resolved"),
        ("page=0", "page must be a whole number"),
        ("page=two", "page must be a whole number"),
        ("page=10001", "page must be a whole number"),
        ("service=" + "x" * 201, "service must be at most 200 characters"),
        ("severity=" + "x" * 201, "severity must be at most 200 characters"),
    ],
)
async def test_bad_filters_get_a_400_page(store_url: str, query: str, problem: str) -> None:
    async with serving(store_url, secrets(token=None)) as app:
        bad = await app.client.get(f"/incidents?{query}")
        assert bad.status_code == 400
        assert problem in bad.text
        assert_secure(bad)


async def test_the_list_filters_newest_first_and_pages(store_url: str) -> None:
    async with serving(store_url, secrets(token=None)) as app:
        writer = app.runtime.writer
        made = []
        for i in range(30):
            service = ("checkout", "payments", "search")[i % 3]
            severity = "critical" if i % 2 else "warning"
            made.append(
                (
                    await open_incident(
                        writer, f"g{i}", service=service, severity=severity, resolved=i % 5 == 0
                    ),
                    service,
                    severity,
                    i % 5 == 0,
                )
            )

        async def rows(query: str) -> list[int]:
            answer = await app.client.get(f"/incidents?{query}")
            assert answer.status_code == 200, answer.text
            return [
                int(e.attrs["data-incident"])
                for e in parse(answer.text).find("tr")
                if e.attrs.get("data-incident")
            ]

        newest_first = sorted((m[0] for m in made), reverse=True)
        first = await rows("")
        assert first == newest_first[:25]
        assert await rows("page=2") == newest_first[25:]
        assert await rows("page=3") == []
        page_one = parse((await app.client.get("/incidents?service=checkout")).text)
        assert not page_one.find("a", rel="next")  # 10 checkout incidents fit on one page
        listing = parse((await app.client.get("/incidents")).text)
        assert listing.find("a", rel="next")[0].attrs["href"] == "/incidents?page=2"
        want = [m[0] for m in made if m[1] == "payments" and m[2] == "critical" and not m[3]]
        got = await rows("status=triggered&service=payments&severity=critical")
        assert got == sorted(want, reverse=True) and got
        assert await rows("status=resolved") == sorted((m[0] for m in made if m[3]), reverse=True)
        assert await rows("service=nothing") == []
        assert (
            "No incidents match these filters"
            in (await app.client.get("/incidents?service=x")).text
        )


async def test_the_page_shows_the_cards_facts_rca_runs_and_timeline(store_url: str) -> None:
    async with serving(store_url, secrets(token=None)) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START)
        html = (await app.client.get(f"/incidents/{seeded.incident_id}")).text
        page = parse(html)
        facts = page.text[page.text.index("Started") : page.text.index("Root cause analysis")]
        started = ALERT_START.strftime("%Y-%m-%d %H:%M:%S UTC")  # the earliest alert's startsAt
        assert f"Started {started}" in facts
        assert "Alerts 3" in facts and "Escalation level 1" in facts
        assert "Acknowledged U0ALICE" in facts
        assert f"{seeded.title} acknowledged critical checkout" in page.text  # the pills
        assert "78% confidence" in page.text and "Release v2.14.0 of checkout" in page.text
        assert "rollback_deployment(deployment=checkout, revision=v2.13.2)" in page.text
        assert "verified" in page.text
        timeline = page.text[page.text.index("Timeline") :]
        order = ["incident created", "escalated", "acknowledged", "remediation verified"]
        positions = [timeline.index(kind) for kind in order]
        assert positions == sorted(positions)
        # charts: one per reading, each with both markers; refs are anchors, cited ones marked
        for ref in ("M1", "M2"):
            [svg] = page.find("svg", data_ref=ref)
            assert "chart" in svg.classes
        assert len(page.find("g", data_marker="alert-start")) == 2
        assert len(page.find("g", data_marker="change-point")) == 2
        assert {e.attrs["href"] for e in page.find("a", class_="ref")} == {
            f"#ref-{r}" for r in ("L1", "L2", "L3", "L4", "M1", "M2")
        }
        assert "cited" in page.by_id("ref-L2").classes
        assert "cited" not in page.by_id("ref-L5").classes
        assert "cited" in page.by_id("ref-M2").classes


async def test_the_page_shows_what_people_said_of_the_analysis(store_url: str) -> None:
    async with serving(store_url, secrets(token=None)) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
        path = f"/incidents/{seeded.incident_id}"
        unjudged = parse((await app.client.get(path)).text)
        assert "muted" in unjudged.by_id("feedback").classes
        assert "Nobody has said yet whether this was right." in unjudged.text
        cause = "A <script> in the cron job filled the disk"
        said = await app.client.post(
            f"/api/v1/incidents/{seeded.incident_id}/feedback",
            json={"by": "bob", "verdict": "wrong", "actual_cause": cause},
        )
        assert said.status_code == 200, said.text

        html = (await app.client.get(path)).text
        page = parse(html)
        assert {"feedback", "verdict-wrong"} <= page.by_id("feedback").classes
        rca = page.text[page.text.index("Root cause analysis") : page.text.index("Metrics")]
        assert "Marked wrong by bob" in rca and f"Actual cause: {cause}" in rca
        assert "<script>" not in html  # escaped
        await app.client.post(
            f"/api/v1/incidents/{seeded.incident_id}/feedback",
            json={"by": "alice", "verdict": "correct"},
        )
        page = parse((await app.client.get(path)).text)
        assert "verdict-correct" in page.by_id("feedback").classes
        assert "Confirmed by alice" in page.text and "Actual cause" not in page.text


async def test_a_reading_without_points_says_so(store_url: str) -> None:
    async with serving(store_url, secrets(token=None)) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
        gathered = evidence(ALERT_START)
        for reading in gathered["metrics"]:
            del reading["samples"]
        gathered["logs"].append({"ref": "L9", "source": "x", "text": 7})  # does not validate
        await app.runtime.writer.run(
            partial(_replace_evidence, incident_id=seeded.incident_id, gathered=gathered)
        )
        page = parse((await app.client.get(f"/incidents/{seeded.incident_id}")).text)
        assert not page.find("svg")
        assert page.text.count("no points kept") == 2
        assert not page.find(id="ref-L9")


def _replace_evidence(conn: Connection, incident_id: int, gathered: dict[str, Any]) -> None:
    conn.execute(
        update(AnalysisRecord)
        .where(AnalysisRecord.incident_id == incident_id)
        .values(evidence=gathered)
    )


async def test_the_stylesheet_is_served(store_url: str) -> None:
    async with serving(store_url) as app:
        css = await app.client.get("/static/style.css")  # no session needed for the styles
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        assert css.headers["x-content-type-options"] == "nosniff"
        assert ".chart .marker-alert-start line" in css.text


async def test_a_resolved_incident_says_how_long_it_lasted(store_url: str) -> None:
    async with serving(store_url, secrets(token=None)) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START)
        path = f"/incidents/{seeded.incident_id}"
        open_page = parse((await app.client.get(path)).text)
        assert "ago" in _fact(open_page, "Started") and "lasted" not in open_page.text
        resolved = await app.client.post(
            f"/api/v1{path}/resolve", json={"by": "U0ALICE"}, headers={}
        )
        assert resolved.status_code == 200, resolved.text
        page = parse((await app.client.get(path)).text)
        started = _fact(page, "Started")
        assert "lasted " in started and "ago" not in started
        assert "ago" in _fact(page, "Resolved")


def _fact(page: Page, name: str) -> str:
    """The text of one fact of the page's facts list, from its name to the next."""
    facts = page.text[page.text.index("Started") : page.text.index("Root cause analysis")]
    start = facts.index(name)
    following = [facts.index(n, start + 1) for n in FACT_NAMES if n in facts[start + 1 :]]
    return facts[start : min(following, default=len(facts))]


FACT_NAMES = ("Started", "Alerts", "Escalation level", "Acknowledged", "Resolved")


def test_timeline_messages_break_rather_than_widen_the_page() -> None:
    """A group key or URL has no spaces; without a break rule it widens the timeline past a
    1280 px window."""
    from pathlib import Path

    import firebreak.bot.web as web

    css = (Path(web.__file__).parent / "static" / "style.css").read_text()
    rule = css[css.index(".timeline .message") :]
    rule = rule[: rule.index("}")]
    assert "overflow-wrap: anywhere" in rule and "min-width: 0" in rule
