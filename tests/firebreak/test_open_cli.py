"""`firebreak open ID`, run as a user runs it: the link it prints opens the incident's page in
a browser (a session, then the page) on the running server, with the API token set."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.bot.web.seed import seed_incident
from tests.bot.web.serving import ALERT_START, TOKEN, serving
from tests.firebreak.test_cli import FIREBREAK


def open_cli(incident: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FIREBREAK_API_TOKEN": TOKEN}
    env.pop("FIREBREAK_WEB_SECRET", None)
    return subprocess.run(
        [str(FIREBREAK), "open", incident, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def test_the_printed_link_opens_the_page(tmp_path: Path, store_url: str) -> None:
    async with serving(store_url) as app:
        seeded = await seed_incident(app.runtime.writer, ALERT_START, story=False)
        config = tmp_path / "config.yaml"
        config.write_text(
            json.dumps({"store": {"url": store_url}, "server": {"public_url": app.url}})
        )

        printed = open_cli(f"#{seeded.incident_id}", config)

        assert printed.returncode == 0, printed.stderr
        link = printed.stdout.strip()
        assert link.startswith(f"{app.url}/incidents/{seeded.incident_id}?token=")
        assert (await app.client.get(f"/incidents/{seeded.incident_id}")).status_code == 401
        redirect = await app.client.get(link)
        assert redirect.status_code == 303
        page = await app.client.get(redirect.headers["location"])
        assert page.status_code == 200 and seeded.title in page.text

        missing = open_cli("999", config)
        assert missing.returncode == 1 and "There is no incident #999." in missing.stdout
