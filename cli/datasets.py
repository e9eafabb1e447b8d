"""`ewc datasets`: upload, list and delete datasets of your own (`user:<name>` in a spec).

    ewc datasets upload mine.npz --name mine [--description "..."]
    ewc datasets list
    ewc datasets show mine
    ewc datasets delete mine

A dataset is a `.npz` with x_train, y_train, x_test, y_test (and optionally class_names);
every user may train on any dataset (`ewc submit --dataset user:mine`, or
`"dataset": "user:mine"` in a spec); only its owner or an admin may delete it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.client import DEFAULT_URL, AsJson, Client, Profile, Token, Url, console, fail
from cli.output import Output, emit

app = typer.Typer(help="Datasets of your own (.npz), used in a spec as user:<name>.",
                  no_args_is_help=True)  # fmt: skip

NameArg = Annotated[str, typer.Argument(help="The dataset's name (see `ewc datasets list`).")]
COLUMNS = ["name", "owner", "input_shape", "num_classes", "train_examples", "test_examples",
           "size_bytes", "checksum"]  # fmt: skip


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KiB"


@app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(help="The .npz file.", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="Its name; a spec uses user:<name>.")],
    description: Annotated[str | None, typer.Option("--description", help="What it is.")] = None,
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Upload a .npz dataset (checked by the server: shapes, dtypes, labels, NaN, size)."""
    if not file.is_file():
        raise fail(f"{file}: no such file")
    row = (
        Client(url, token, profile=profile)
        .upload_dataset(file, name, description)
        .model_dump(mode="json")
    )

    def human() -> None:
        shape = "×".join(str(d) for d in row["input_shape"])
        console.print(f"dataset [bold]{row['name']}[/bold]: {row['train_examples']} train / "
                      f"{row['test_examples']} test examples of {shape}, {row['num_classes']} "
                      f"classes, {_size(row['size_bytes'])}, sha256 {row['checksum'][:12]}…")  # fmt: skip
        console.print(f'use it in a spec as "dataset": "{row["use_as"]}"', highlight=False)

    emit(row, output, as_json=as_json, table=human)


@app.command("list")
def list_datasets(
    output: Output = None, as_json: AsJson = False, url: Url = DEFAULT_URL, token: Token = None,
    profile: Profile = None,
) -> None:  # fmt: skip
    """Every uploaded dataset: shape, classes, size, owner, checksum."""
    rows = [d.model_dump(mode="json") for d in Client(url, token, profile=profile).datasets()]
    emit({"items": rows}, output, as_json=as_json, rows=rows, columns=COLUMNS)


@app.command("show")
def show(
    name: NameArg, output: Output = None, as_json: AsJson = False, url: Url = DEFAULT_URL,
    token: Token = None, profile: Profile = None,
) -> None:  # fmt: skip
    """One dataset, every field."""
    row = Client(url, token, profile=profile).dataset(name).model_dump(mode="json")
    emit(row, output, as_json=as_json, rows=[{"field": k, "value": v} for k, v in row.items()],
         columns=["field", "value"])  # fmt: skip


@app.command("delete")
def delete(
    name: NameArg, url: Url = DEFAULT_URL, token: Token = None, profile: Profile = None
) -> None:
    """Delete a dataset (yours, or any as an admin); refused while queued or running jobs use it."""
    Client(url, token, profile=profile).delete_dataset(name)
    console.print(f"dataset {name} deleted")


def register(app_: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app_.add_typer(app, name="datasets")
