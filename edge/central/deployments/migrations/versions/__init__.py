"""Alembic revisions, oldest first (a package, so the wheel ships them)."""
