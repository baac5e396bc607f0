"""Alembic's entry point: migrations run on the connection `server.store.db` hands over."""

from alembic import context

from server.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
