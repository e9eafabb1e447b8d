"""`ewc artifacts prune`: delete old checkpoints (the retention setting); `ewc artifacts
list ID`: an experiment's artifacts, asked of the server (`-o table|json|csv`).

Checkpoints (`task-<k>/`) of experiments that finished more than
`EWC_ARTIFACT_RETENTION_DAYS` days ago are deleted; final models and TensorBoard files stay.
Acts on the settings' database and artifact store, like `ewc migrate`: the artifacts
folder as always and, when EWC_ARTIFACTS_URL is a bucket (`s3://...`), the published
`task-<k>/` folders there too (the store's own `prune`, as a worker's retention does),
listed as `s3://...` keys in the same lines.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import DEFAULT_URL, Client, Profile, Token, Url
from cli.output import Output, emit
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

    from common.storage import StorageError
    from store.artifacts import expired_experiments, prune_checkpoints
    from store.db import make_engine, make_session_factory, unit_of_work
    from store.errors import error_reason

    settings = get_settings()
    retention = settings.artifact_retention_days if days is None else days
    store = settings.artifact_store()
    # The local store is the folder; next to a remote one it holds working copies left over.
    root = store.root if store.is_local else settings.resolved_artifacts_dir()
    engine = make_engine(settings.resolved_database_url())
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            pruned = [(str(p.path), p.experiment_id, p.bytes_freed)
                      for p in prune_checkpoints(session, root, retention, dry_run=dry_run)]
            expired = [] if store.is_local else expired_experiments(session, retention)
    except SQLAlchemyError as exc:
        reason = error_reason(exc)
        typer.secho(f"error: cannot read the database ({reason}); run `ewc migrate`?",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    verb = "would delete" if dry_run else "deleted"
    for path, experiment_id, size in pruned:
        typer.echo(f"{verb} {path} (experiment {experiment_id}, {size} bytes)")
    try:
        for experiment_id in expired:
            for path, size in _prune_remote(store, experiment_id, dry_run):
                pruned.append((path, experiment_id, size))
                typer.echo(f"{verb} {path} (experiment {experiment_id}, {size} bytes)")
    except StorageError as exc:  # its message holds no credential
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    total = sum(size for _, _, size in pruned)
    where = root if store.is_local else f"{root} and {store.url_for()}"
    typer.echo(f"{verb} {len(pruned)} checkpoints, {total / 1e6:.1f} MB "
               f"(retention {retention:g} days, {where})")


def _prune_remote(store, experiment_id: int, dry_run: bool) -> list[tuple[str, int]]:
    """(URL, bytes) of the published checkpoints of one experiment in a remote store that
    go (with `dry_run`, would go): all of them, through the store's `prune` (which also
    removes what interrupted publishes left)."""
    from worker.artifacts import experiment_key

    key = experiment_key(experiment_id)
    sizes = {c.key: sum(f.size for f in c.files.values()) for c in store.checkpoints(key)}
    doomed = list(sizes) if dry_run else store.prune(key, keep=0)
    return [(store.url_for(k), sizes.get(k, 0)) for k in doomed]


@artifacts_app.command("list")
def list_artifacts(
    experiment_id: Annotated[int, typer.Argument(help="Experiment id.")],
    output: Output = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """An experiment's downloadable artifacts, from the server (path, kind, size, files)."""
    doc = Client(url, token, profile=profile).artifacts(experiment_id).model_dump(mode="json")
    emit(doc, output, rows=doc["items"],
         columns=["path", "kind", "size", "files", "modified", "url"])  # fmt: skip


@artifacts_app.command("init")
def init(
    wait: Annotated[float, typer.Option(
        "--wait", help="Seconds to wait for an object store that does not answer yet.")] = 60.0,
) -> None:
    """Create the artifact store's bucket (s3://bucket/...) or folder unless it exists."""
    import time

    from common.storage import StorageError, StorageUnavailable

    store = get_settings().artifact_store()
    deadline = time.monotonic() + wait
    while True:
        try:
            if store.is_local:
                store.check()  # creates the folder, checks it is writable
                typer.echo(f"artifacts folder {store.url_for()} is ready")
                return
            created = store.ensure_bucket()
            break
        except StorageUnavailable as exc:
            if time.monotonic() >= deadline:
                typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
                raise typer.Exit(1) from None
            time.sleep(1.0)
        except StorageError as exc:  # its message holds no credential
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
    state = "created" if created else "already exists"
    typer.echo(f"bucket s3://{store.bucket} {state} (artifacts at {store.url_for()})")


def register(app: typer.Typer) -> None:
    """Add `ewc artifacts ...` to the `ewc` app."""
    app.add_typer(artifacts_app, name="artifacts")
