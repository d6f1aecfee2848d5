"""Alembic migrations of the console's tables; `edge.console.schema.migrate` runs them to head."""
