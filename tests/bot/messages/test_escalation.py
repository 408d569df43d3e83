"""Escalation pages mention whom they page, and nothing else."""

from __future__ import annotations

from firebreak.bot.messages.escalation import escalation_page_text


def test_escalation_mentions():
    text = escalation_page_text(2, ["U0ALICE", "S0SRE", "C0OPS", "W0BOB", "<@U0X>"])
    assert "level 2" in text
    for expected in ("<@U0ALICE>", "<!subteam^S0SRE>", "<#C0OPS>", "<@W0BOB>", "<@U0X>"):
        assert expected in text
    assert "<!channel>" not in escalation_page_text(1, ["<!channel"])
