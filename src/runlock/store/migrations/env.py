"""Alembic environment: runs on the connection that ``runlock.store.migrate`` hands it."""

from alembic import context

from runlock.store.schema import METADATA

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=METADATA,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
