"""Alembic revision scripts (a package, so that an installed copy ships them)."""
