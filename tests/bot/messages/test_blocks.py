"""The shared helpers: one truncate that never cuts an entity, mentions that cannot ping."""

from __future__ import annotations

from firebreak.bot.messages.blocks import escape, mention
from firebreak.tools.text import truncate


def test_truncate():
    assert truncate("short", 10) == "short"
    cut = truncate("a" * 100, 10)
    assert len(cut) == 10 and cut.endswith("…")
    cut = truncate(escape("&" * 100), 12)
    assert len(cut) <= 12 and cut.replace("&amp;", "") == "…"


def test_mention_passes_only_one_formatted_user_group_or_channel():
    assert mention("<@U0ALICE>") == "<@U0ALICE>"
    assert mention("<!subteam^S0SRE>") == "<!subteam^S0SRE>"
    assert mention("<#C0OPS>") == "<#C0OPS>"
    for hostile in ("<!channel>", "<!here>", "<https://evil.example|x>", "<@U0A> <!channel>"):
        assert "<" not in mention(hostile), hostile
