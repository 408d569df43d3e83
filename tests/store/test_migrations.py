"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from firebreak.store.db import sync_url
from firebreak.store.migrate import alembic_config, upgrade
from firebreak.store.models import Base


async def test_migrations_match_models_and_are_repeatable(store_url: str) -> None:
    await asyncio.to_thread(upgrade, store_url)
    await asyncio.to_thread(upgrade, store_url)  # a second upgrade is a no-op
    engine = create_engine(sync_url(store_url))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert compare_metadata(context, Base.metadata) == []
        heads = ScriptDirectory.from_config(alembic_config(store_url)).get_heads()
        assert [context.get_current_revision()] == heads
    engine.dispose()
