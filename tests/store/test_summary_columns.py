"""Migration 0004: the summary metrics become float columns, filled from the summaries
already stored, on SQLite and PostgreSQL; a downgrade drops them and nothing else."""

from __future__ import annotations

import sqlalchemy as sa

from store.db import make_engine
from store.migrate import downgrade, upgrade

METRICS = ("average_accuracy", "bwt", "fwt", "forgetting")
#: id -> summary as an older server stored it (JSON; NaN is refused by PostgreSQL's json).
SUMMARIES = {
    1: {"average_accuracy": 0.91, "bwt": -0.04, "fwt": 0.01, "forgetting": 0.05},
    2: {"average_accuracy": 0.5, "bwt": None, "fwt": None, "forgetting": None},  # one task
    3: None,  # still running
    4: {"average_accuracy": 1, "bwt": "n/a", "fwt": True, "other": 3.0},  # odd values
    5: {},
}


def _insert_old_rows(url: str) -> None:
    users = sa.table("users", sa.column("id"), sa.column("name"), sa.column("is_admin"),
                     sa.column("created_at"))
    experiments = sa.table(
        "experiments", *(sa.column(c) for c in (
            "id", "owner_id", "status", "queue", "priority", "created_at",
            "attempts", "cancel_requested", "num_tasks", "total_epochs", "current_task",
            "current_epoch")),
        sa.column("spec", sa.JSON()),
        sa.column("summary", sa.JSON()),
    )
    tags = sa.table("experiment_tags", sa.column("experiment_id"), sa.column("tag"))
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(users.insert().values(id=1, name="ann", is_admin=False,
                                           created_at=sa.func.current_timestamp()))
        for i, summary in SUMMARIES.items():
            conn.execute(experiments.insert().values(
                id=i, owner_id=1, spec={}, status="succeeded", queue="cpu",
                priority=0, created_at=sa.func.current_timestamp(), attempts=0,
                cancel_requested=False, num_tasks=1, total_epochs=1, current_task=1,
                current_epoch=1, summary=summary,
            ))
        conn.execute(tags.insert().values(experiment_id=1, tag="kept"))
    engine.dispose()


def _metric_rows(url: str) -> dict[int, tuple]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, {', '.join(METRICS)} FROM experiments"))
        found = {row[0]: tuple(row[1:]) for row in rows}
    engine.dispose()
    return found


def test_upgrade_fills_the_columns_from_the_stored_summaries(empty_url: str) -> None:
    upgrade(empty_url, "0003")
    _insert_old_rows(empty_url)
    upgrade(empty_url, "0004")
    assert _metric_rows(empty_url) == {
        1: (0.91, -0.04, 0.01, 0.05),
        2: (0.5, None, None, None),
        3: (None, None, None, None),
        4: (1.0, None, None, None),
        5: (None, None, None, None),
    }
    engine = make_engine(empty_url)
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("experiments")}
    engine.dispose()
    assert {f"ix_experiments_{m}" for m in METRICS} <= indexes

    downgrade(empty_url, "0003")
    engine = make_engine(empty_url)
    inspector = sa.inspect(engine)
    columns = {c["name"] for c in inspector.get_columns("experiments")}
    with engine.connect() as conn:  # dropping the columns did not cascade to other tables
        kept = conn.execute(sa.text("SELECT experiment_id, tag FROM experiment_tags")).all()
        count = conn.execute(sa.text("SELECT count(*) FROM experiments")).scalar_one()
    engine.dispose()
    assert not columns & set(METRICS) and "summary" in columns
    assert kept == [(1, "kept")] and count == len(SUMMARIES)
