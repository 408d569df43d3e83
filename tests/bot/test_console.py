"""Slack messages in the terminal: plain text and rich markup, hostile text printed as written."""

from __future__ import annotations

import io

from rich.console import Console

from firebreak.bot.console import mrkdwn_to_text, render_text
from firebreak.bot.messages.incident import incident_card
from firebreak.bot.messages.rca import rca_card
from firebreak.store.schemas import (
    IncidentStatus,
)
from tests.bot.messages.builders import (
    make_analysis,
    make_incident,
)


def test_render_text_for_the_terminal():
    incident = make_incident(
        status=IncidentStatus.ACKNOWLEDGED, acknowledged_by="U0BOB", title="db <slow>"
    )
    out = render_text(incident_card(incident)[1])
    assert "db <slow>" in out
    assert "@U0BOB" in out and "<@" not in out
    assert "[ " in out and "Escalate" in out
    assert "2026-11-22 10:00 UTC" in out
    assert "<!date" not in out
    page = render_text([b for b in rca_card(incident, make_analysis())[1]])
    assert "ERROR pool exhausted" in page


def test_render_text_as_rich_markup():
    text = (
        "*Root cause* in `pool_in_use[5m]` per <https://grafana.example.com/d/1|the board>, "
        "<!date^1795000000^{date}|2026-11-18 10:00 UTC> by <@U0BOB> for <!subteam^S0SRE> "
        "_soon_ ~old~ [not markup] a_b_c &lt;x&gt;"
    )
    markup = mrkdwn_to_text(text, markup=True)
    assert markup.startswith("[bold]Root cause[/bold] in [cyan]pool_in_use")
    assert (
        "[link=https://grafana.example.com/d/1]the board (https://grafana.example.com/d/1)[/link]"
    ) in markup
    assert "2026-11-18 10:00 UTC" in markup and "<!date" not in markup
    assert "[bold magenta]@U0BOB[/bold magenta]" in markup
    assert "[bold magenta]@S0SRE[/bold magenta]" in markup
    assert "[italic]soon[/italic] [strike]old[/strike] \\[not markup] a_b_c <x>" in markup

    out = io.StringIO()
    console = Console(file=out, width=300, color_system="standard", force_terminal=True)
    console.print(markup, highlight=False)
    shown = out.getvalue()
    assert "\x1b[1mRoot cause" in shown  # bold, not asterisks
    assert "*" not in shown and "`" not in shown and "[not markup]" in shown
    assert "pool_in_use[5m]" in shown
    plain = mrkdwn_to_text(text)  # plain text keeps the marks as typed
    assert plain.startswith("*Root cause* in `pool_in_use[5m]` per the board (https://")


def test_render_text_markup_survives_hostile_urls_and_labels():
    incident = make_incident(title="[bold]x[/bold] <&>")
    blocks = incident_card(incident, page_url="https://f.example.com/incidents/7?token=a]b[c")[1]
    markup = render_text(blocks, markup=True)
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(markup)
    assert "[bold]x[/bold] <&>" in out.getvalue()  # printed as written, not as markup
    link = "🌐 Open in Firebreak (https://f.example.com/incidents/7?token=a]b[c) ]"
    assert link in out.getvalue()
    out = io.StringIO()  # a terminal: the button is a hyperlink to the whole URL
    Console(file=out, width=200, color_system="standard", force_terminal=True).print(markup)
    assert "https://f.example.com/incidents/7?token=a%5Db%5Bc" in out.getvalue()


def test_a_long_signed_link_is_printed_whole():
    url = "http://localhost:8080/incidents/7?token=7.1796628548." + "A" * 43
    blocks = incident_card(make_incident(), page_url=url)[1]
    assert f"Open in Firebreak ({url}) ]" in render_text(blocks)
    out = io.StringIO()
    Console(file=out, width=400, color_system=None).print(render_text(blocks, markup=True))
    assert f"Open in Firebreak ({url}) ]" in out.getvalue()
    long_graph = "https://prometheus.example.com/graph?g0.expr=" + "x%28" * 40
    assert mrkdwn_to_text(f"<{long_graph}|graph>") == f"graph ({long_graph})"
