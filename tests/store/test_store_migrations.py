"""The migrations create exactly the tables of `store.models` on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from store.db import make_engine
from store.migrate import current_revision, downgrade, head_revision, migrations_dir, upgrade
from store.models import Base


def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_models_and_migrations_do_not_drift(migrated_url: str) -> None:
    assert current_revision(migrated_url) == head_revision()
    assert _diff(migrated_url) == []


def test_drift_check_can_fail(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_experiment_tags_tag"))
    engine.dispose()
    assert any("ix_experiment_tags_tag" in repr(d) for d in _diff(migrated_url))


def test_downgrade_to_base_and_back(migrated_url: str) -> None:
    downgrade(migrated_url, "base")
    engine = make_engine(migrated_url)
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(migrated_url)
    assert _diff(migrated_url) == []


def test_alembic_config_ships_inside_the_package() -> None:
    folder = migrations_dir()
    assert (folder / "alembic.ini").is_file()
    assert (folder / "env.py").is_file()
    assert (folder / "versions" / "__init__.py").is_file()  # so setuptools packages them
    assert head_revision() is not None
