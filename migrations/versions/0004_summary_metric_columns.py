"""experiments.average_accuracy, bwt, fwt, forgetting: the summary's metrics as indexed
float columns (filtering and sorting runs in SQL), filled from the existing summaries

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 13:30:00
"""

import math
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen here (not imported from the store): a migration must not change when code does.
METRICS = ("average_accuracy", "bwt", "fwt", "forgetting")
BATCH = 500


def _number(value):
    """A finite number of the summary as a float, else None (null, missing, NaN, text)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _backfill() -> None:
    """Copy the metrics out of every stored summary, in id-ordered batches; read in Python so
    one code path serves both backends (and skips whatever is not a finite number)."""
    experiments = sa.table(
        "experiments",
        sa.column("id", sa.Integer()),
        sa.column("summary", sa.JSON()),
        *(sa.column(name, sa.Float()) for name in METRICS),
    )
    bind = op.get_bind()
    last_id = 0
    while True:
        rows = bind.execute(
            sa.select(experiments.c.id, experiments.c.summary)
            .where(experiments.c.id > last_id, experiments.c.summary.is_not(None))
            .order_by(experiments.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            summary = row.summary if isinstance(row.summary, dict) else {}
            values = {name: _number(summary.get(name)) for name in METRICS}
            if any(v is not None for v in values.values()):
                bind.execute(
                    experiments.update().where(experiments.c.id == row.id).values(**values)
                )
        last_id = rows[-1].id


def upgrade() -> None:
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        for name in METRICS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
            batch_op.create_index(batch_op.f(f"ix_experiments_{name}"), [name], unique=False)
    _backfill()


def downgrade() -> None:
    # Not in batch mode: on SQLite that re-creates the table, and dropping the old one with
    # foreign keys on would cascade-delete every run's tags and metrics. Both backends drop
    # a plain column in place (SQLite since 3.35).
    for name in reversed(METRICS):
        op.drop_index(op.f(f"ix_experiments_{name}"), table_name="experiments")
        op.drop_column("experiments", name)
