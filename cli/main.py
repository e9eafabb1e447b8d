"""`ewc`: the one command line. Sub-commands import their heavy parts (TensorFlow, Celery,
FastAPI) only when they run, so `ewc --help` and the client commands stay fast."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import admin, artifacts, datasets, jobs, login, logs, manage, service, sweep, webhooks
from cli.client import GLOBAL_PROFILE
from cli.compare import register as register_compare
from cli.run import run as run_command

app = typer.Typer(
    name="ewc",
    help="EWC Server: continual-learning experiments with EWC, FIM and IncDet.",
    no_args_is_help=True,
    add_completion=True,  # `ewc --install-completion`, `ewc --show-completion` (the shell it runs from)
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    profile: Annotated[str | None, typer.Option(
        "--profile", show_default=False, metavar="NAME",
        help="The `ewc login` profile every client command uses (a command's own --profile "
        "wins; else $EWC_PROFILE, else default).")] = None,
) -> None:  # fmt: skip
    """EWC Server: continual-learning experiments with EWC, FIM and IncDet."""
    if profile:
        ctx.meta[GLOBAL_PROFILE] = profile


app.command("run", help="Train here, with the original project's flags.")(run_command)
jobs.register(app)
login.register(app)
service.register(app)
admin.register(app)
sweep.register(app)
artifacts.register(app)
datasets.register(app)
logs.register(app)
manage.register(app)
webhooks.register(app)
register_compare(app)


def main() -> None:
    """Console-script entry point; a bad `EWC_*` setting is one `error:` line, exit 2."""
    from pydantic import ValidationError

    from common.settings import settings_problems

    try:
        app()
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        typer.secho(f"error: {settings_problems(exc)}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None
