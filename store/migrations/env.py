"""Alembic environment: the URL comes from `firebreak.store.migrate`, never from a file."""

from alembic import context
from sqlalchemy import create_engine, pool

from firebreak.store.models import Base

url = context.config.attributes["url"]
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
