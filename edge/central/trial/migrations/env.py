"""Alembic environment: run by `edge.central.trial.store.migrate` on the connection it passes.

No alembic.ini and no logging setup: the store gives the connection in `config.attributes`.
"""

from __future__ import annotations

from alembic import context

from edge.central.trial.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
