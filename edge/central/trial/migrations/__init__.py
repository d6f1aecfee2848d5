"""Alembic migrations of the field-trial database; `TrialStore.open` runs them to head."""
