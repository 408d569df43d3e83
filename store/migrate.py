"""Alembic, driven from code: `firebreak db upgrade` and `serve` both call `upgrade`.

`upgrade` reports what it did (the revisions before and after, and those it applied) so the
command line can say "applied 0001 → 0003" or "already at 0003" instead of a bare "done".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from firebreak.store.db import sync_url

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Upgrade:
    """What one `upgrade` did. `before` is empty for a store that had no schema yet."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    applied: tuple[str, ...]  # oldest first

    def describe(self) -> str:
        if not self.applied:
            return f"already at {', '.join(self.after) or 'base'}"
        if len(self.applied) == 1:
            return f"applied {self.applied[0]}"
        return f"applied {self.applied[0]} → {self.applied[-1]}"


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = sync_url(url)
    return cfg


def current_heads(url: str) -> tuple[str, ...]:
    """The revisions the database is at (empty: not migrated). Blocking; on SQLite it creates
    the file, as `upgrade` would."""
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> Upgrade:
    """Blocking: run it in a thread from async code."""
    config = alembic_config(url)
    before = current_heads(url)
    command.upgrade(config, revision)
    after = current_heads(url)
    return Upgrade(before, after, _applied(config, before, after))


def _applied(
    config: AlembicConfig, before: tuple[str, ...], after: tuple[str, ...]
) -> tuple[str, ...]:
    if set(before) == set(after):
        return ()
    script = ScriptDirectory.from_config(config)
    lower: str | tuple[str, ...] = before or "base"
    steps = script.iterate_revisions(after, lower)
    return tuple(reversed([step.revision for step in steps if step is not None]))
