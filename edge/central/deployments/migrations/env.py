"""Alembic environment of the deployment tables, run by `edge.central.deployments.schema.migrate`
on the connection it passes; its own version table keeps its history apart from the trial's."""

from __future__ import annotations

from alembic import context

from edge.central.deployments.schema import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
