"""What the page makes of the stored data: refs linked and text escaped, citations, the
related-incidents slot, rendered through the real templates."""

from __future__ import annotations

from datetime import UTC, datetime

from firebreak.bot.web.auth import incident_link
from firebreak.bot.web.pages import TEMPLATES
from firebreak.bot.web.views import build_view, cited_refs, linked
from firebreak.config import Config
from firebreak.store.schemas import IncidentOut, IncidentStatus, SlackRef
from tests.bot.web.html import parse
from tests.bot.web.seed import analysis, evidence
from tests.bot.web.serving import secrets

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def incident(**changes: object) -> IncidentOut:
    values: dict[str, object] = {
        "id": 7,
        "title": "HighErrorRate <b>checkout</b>",
        "status": IncidentStatus.TRIGGERED,
        "severity": "critical",
        "service": "checkout",
        "labels": {},
        "group_key": "g",
        "created_at": START,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "resolved_at": None,
        "alert_count": 1,
        "truncated_alerts": 0,
        "escalation_level": 0,
        "slack": SlackRef(),
        "analysis": analysis(START),
    }
    return IncidentOut.model_validate({**values, **changes})


def render(**context: object) -> str:
    return TEMPLATES.get_template("incident.html.j2").render(now=START, **context)


def test_text_is_escaped_and_known_refs_become_links() -> None:
    html = str(linked("<script>alert(1)</script> see [L2, M1] and X9, L77", {"L2", "M1"}))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a class="ref" href="#ref-L2">L2</a>' in html
    assert '<a class="ref" href="#ref-M1">M1</a>' in html
    assert '<span class="ref">L77</span>' in html  # cited but not on the page: no dead link
    assert "X9" in html and "ref-X9" not in html


def test_cited_refs_are_the_evidence_items_and_every_ref_the_text_names() -> None:
    assert cited_refs(analysis(START)) == {"L1", "L2", "L3", "L4", "M1", "M2"}
    assert cited_refs(None) == set()


def test_the_page_escapes_what_came_from_alerts_and_models() -> None:
    hostile = analysis(START).model_copy(update={"root_cause": "<img src=x onerror=alert(1)> [L1]"})
    view = build_view(incident(analysis=hostile), [], evidence(START), [])
    page = render(view=view)
    assert "<img" not in page and "<b>checkout</b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert parse(page).find("a", href="#ref-L1")


def test_the_related_slot_shows_related_incidents_once_they_are_known() -> None:
    empty = parse(render(view=build_view(incident(), [], evidence(START), [])))
    assert "None known." in empty.text
    related = {
        "similar": [
            {"id": 3, "title": "Pool exhausted", "status": "resolved", "root_cause": "pool"}
        ],
        "concurrent": [],
    }
    view = build_view(incident(), [], evidence(START), [], related=related)
    page = parse(render(view=view))
    assert page.find("a", href="/incidents/3")
    assert "Similar" in page.text and "Concurrent" not in page.text


def test_an_incident_without_analysis_or_evidence_still_renders() -> None:
    view = build_view(incident(analysis=None), [], None, [])
    page = parse(render(view=view))
    assert "No analysis yet." in page.text and "No metric readings." in page.text


def test_the_link_takes_the_configured_public_url() -> None:
    public = Config().server.public_url  # pydantic's URL, with its trailing slash
    link = incident_link(public, 7, secrets(), START)
    assert link.startswith("http://localhost:8080/incidents/7?token=7.")
