"""`ewc artifacts prune`: delete old checkpoints (the retention setting).

Checkpoints (`task-<k>/`) of experiments that finished more than
`EWC_ARTIFACT_RETENTION_DAYS` days ago are deleted; final models and TensorBoard files stay.
Acts on the settings' database and artifacts folder, like `ewc migrate`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from common.settings import get_settings

artifacts_app = typer.Typer(help="Manage stored artifacts (checkpoints, models).",
                            no_args_is_help=True)


@artifacts_app.command("prune")
def prune(
    days: Annotated[float | None, typer.Option(
        "--days", help="Retention in days (default: EWC_ARTIFACT_RETENTION_DAYS; ≤ 0 keeps all).",
        show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")] = False,
) -> None:
    """Delete the per-task checkpoints of experiments finished more than N days ago."""
    from sqlalchemy.exc import SQLAlchemyError

    from store.artifacts import prune_checkpoints
    from store.db import make_engine, make_session_factory, unit_of_work
    from store.errors import error_reason

    settings = get_settings()
    retention = settings.artifact_retention_days if days is None else days
    root = settings.resolved_artifacts_dir()
    engine = make_engine(settings.resolved_database_url())
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            pruned = prune_checkpoints(session, root, retention, dry_run=dry_run)
    except SQLAlchemyError as exc:
        reason = error_reason(exc)
        typer.secho(f"error: cannot read the database ({reason}); run `ewc migrate`?",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    verb = "would delete" if dry_run else "deleted"
    for p in pruned:
        typer.echo(f"{verb} {p.path} (experiment {p.experiment_id}, {p.bytes_freed} bytes)")
    total = sum(p.bytes_freed for p in pruned)
    typer.echo(f"{verb} {len(pruned)} checkpoints, {total / 1e6:.1f} MB "
               f"(retention {retention:g} days, {root})")


def register(app: typer.Typer) -> None:
    """Add `ewc artifacts ...` to the `ewc` app."""
    app.add_typer(artifacts_app, name="artifacts")
