"""Alembic migrations of the deployment tables; `edge.central.deployments.schema.migrate` runs them."""
