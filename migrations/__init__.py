"""Alembic migrations of the EWC Server database (run them with `ewc migrate`)."""
