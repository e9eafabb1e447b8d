"""What researchers look at, assembled from the store: plots of an experiment (cached),
comparison of several experiments, and the CSV and JSON exports of the metrics.

Shared by the v1 routes (`api.routes.reports`) and the dashboard (`api.routes.dashboard`).
Accuracies are fractions in [0, 1]; plot images are PNG bytes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

from fastapi import Response
from fastapi.encoders import jsonable_encoder
from sqlalchemy.orm import Session

from api import parsing, plots, plots_compare
from api.schemas import experiment_out
from api.vocabulary import PLOT_KINDS
from continual_core.methods import METHODS
from store import experiments as store_experiments
from store.errors import InvalidInput, NotFound
from store.models import Experiment

#: Most experiments one comparison may hold.
MAX_COMPARE = 20
#: Most runs one overlay plot draws (beyond that the legend and colours stop being readable).
MAX_COMPARE_PLOT = 10
#: Spec fields that are bookkeeping, not science: left out of the spec differences.
BOOKKEEPING_FIELDS = ("name", "tags")


class InvalidIds(InvalidInput):
    """`ids` is not a comma-separated list of experiment ids."""

    field = "ids"


class ExperimentsNotFound(NotFound):
    def __init__(self, missing: list[int]):
        super().__init__(
            f"experiments {', '.join(map(str, missing))} do not exist"
            if len(missing) > 1
            else f"experiment {missing[0]} does not exist"
        )
        self.missing = missing


def plot_cache(state: Any) -> plots.PlotCache:
    """The app's plot cache (created on first use on `app.state`)."""
    cache = getattr(state, "plot_cache", None)
    if cache is None:
        cache = state.plot_cache = plots.PlotCache()
    return cache


def experiment_plot(
    session: Session, cache: plots.PlotCache, experiment: Experiment, kind: str
) -> bytes:
    """The PNG of one plot kind ("accuracy-matrix" or "curves") of a stored experiment.

    Cached by (id, kind, stored epoch rows, stored task rows, status, attempts): a new
    epoch or a status change renders a fresh image. Raises `plots.NothingToPlot`.
    """
    doc = store_experiments.metrics_document(session, experiment)
    key = (
        experiment.id, kind, len(doc["epochs"]), len(doc["accuracy_matrix"]),
        str(experiment.status), experiment.attempts,
    )  # fmt: skip
    title = f"#{experiment.id} {experiment.name or ''}".strip()
    if kind == "accuracy-matrix":
        return cache.get_or_render(key, lambda: plots.accuracy_matrix_png(doc, title=None))
    if kind == "curves":
        return cache.get_or_render(
            key, lambda: plots.curves_png(doc, title=f"{title}: validation accuracy per task")
        )
    raise NotFound(f"no plot named {kind!r}; choose one of {', '.join(PLOT_KINDS)}")


# Comparison -------------------------------------------------------------------------------


def parse_ids(text: str | None, max_count: int = MAX_COMPARE) -> list[int]:
    """Experiment ids from "1,2,3" (spaces allowed, duplicates dropped, order kept).

    Raises `InvalidIds` for an empty list, a non-integer, or more than `max_count`.
    """
    try:
        ids = parsing.parse_id_list(text, max_count=max_count)
    except parsing.ParseError as exc:
        raise InvalidIds(f"ids: {exc}") from None
    if not ids:
        raise InvalidIds("ids: give experiment ids separated by commas, e.g. ids=1,2,3")
    return ids


def load_experiments(session: Session, ids: list[int]) -> list[Experiment]:
    """The experiments in the order of `ids`; `ExperimentsNotFound` lists every unknown id."""
    found = store_experiments.find_experiments(session, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise ExperimentsNotFound(missing)
    return [found[i] for i in ids]


def load_existing(session: Session, ids: list[int]) -> list[Experiment]:
    """Those of `ids` that exist (unknown ids are skipped), in id order."""
    return list(store_experiments.find_experiments(session, ids).values())


def flatten(spec: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested spec as {dotted path: value}; an off option (null) stays one entry."""
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def spec_differences(specs: Mapping[int, Mapping[str, Any]]) -> dict[str, dict[int, Any]]:
    """{dotted path: {experiment id: value}} for every spec field whose values differ.

    A field missing from a spec (an option off) counts as null. Bookkeeping fields
    (name, tags) are left out; they are in the summary table.
    """
    flats = {i: flatten(s) for i, s in specs.items()}
    paths = sorted({p for f in flats.values() for p in f})
    diff: dict[str, dict[int, Any]] = {}
    for path in paths:
        if path.split(".")[0] in BOOKKEEPING_FIELDS:
            continue
        values = {i: f.get(path) for i, f in flats.items()}
        if len({repr(v) for v in values.values()}) > 1:
            diff[path] = values
    return diff


def comparison(experiments: list[Experiment]) -> dict[str, Any]:
    """The comparison document: a summary row per experiment and the differing spec fields.

    {"experiments": [{"id", "name", "owner", "status", "tags", "summary", "progress"}],
    "spec_differences": {path: {id: value}}, "common_spec": {path: value}}.
    """
    specs = {e.id: e.spec or {} for e in experiments}
    diff = spec_differences(specs)
    first = flatten(specs[experiments[0].id]) if experiments else {}
    common = {
        p: v for p, v in first.items()
        if p not in diff and p.split(".")[0] not in BOOKKEEPING_FIELDS
    }  # fmt: skip
    return {
        "experiments": [
            {
                "id": e.id,
                "name": e.name,
                "owner": e.owner.name,
                "status": e.status.value,
                "tags": e.tag_names,
                "summary": e.summary,
                "progress": e.progress,
            }
            for e in experiments
        ],
        "spec_differences": {p: {str(i): v for i, v in vals.items()} for p, vals in diff.items()},
        "common_spec": common,
    }


def run_label(experiment: Experiment) -> str:
    """A run's legend label: "#id name (λ=..)", the other active methods named too
    ("#3 online (λ=100, fim)"); "(no method)" when none is on."""
    spec = experiment.spec or {}
    parts = []
    ewc = spec.get("ewc")
    if isinstance(ewc, Mapping):
        lam = ewc.get("lambda")
        parts.append(f"λ={lam:g}" if isinstance(lam, int | float) else "EWC")
    parts += [name for name in METHODS if name != "ewc" and spec.get(name)]
    if spec.get("joint"):
        parts.append("joint")
    name = (experiment.name or spec.get("name") or "").strip()
    name = name if len(name) <= 40 else name[:39] + "…"
    return " ".join(p for p in (f"#{experiment.id}", name, f"({', '.join(parts) or 'no method'})") if p)


def compare_plot(
    session: Session, cache: plots.PlotCache, ids_text: str | None, kind: str
) -> bytes:
    """The overlay PNG of `kind` (`plots_compare.COMPARE_KINDS`) for the experiments of
    `ids_text` ("1,2,3", in legend order; at most `MAX_COMPARE_PLOT`).

    Raises `InvalidIds` (a bad list, too many, or runs this plot cannot draw together: diff
    needs exactly two of one task count), `ExperimentsNotFound`, `plots.NothingToPlot`.
    Cached by every run's stored rows and status, like `experiment_plot`.
    """
    ids = parse_ids(ids_text, max_count=MAX_COMPARE_PLOT)
    if kind == "diff" and len(ids) != 2:
        raise InvalidIds(f"ids: kind=diff compares exactly two experiments (drawn as B − A, "
                         f"the second minus the first); got {len(ids)}")  # fmt: skip
    found = load_experiments(session, ids)
    docs = [store_experiments.metrics_document(session, e) for e in found]
    runs = [plots_compare.Run(run_label(e), d) for e, d in zip(found, docs, strict=True)]
    key = ("compare", kind, *(
        (e.id, r.label, len(d["epochs"]), len(d["accuracy_matrix"]), str(e.status), e.attempts)
        for e, r, d in zip(found, runs, docs, strict=True)
    ))  # fmt: skip
    try:
        return cache.get_or_render(key, lambda: plots_compare.compare_png(kind, runs))
    except plots_compare.Mismatch as exc:
        raise InvalidIds(f"ids: {exc}") from None


# Export -----------------------------------------------------------------------------------


def metrics_csv(doc: Mapping[str, Any], experiment_id: int) -> str:
    """The metrics as one CSV table: a row per epoch, then a row per finished task.

    Columns: experiment, row ("epoch" or "test"), task, epoch, task_epoch, loss,
    acc_task_1..acc_task_n, train_s, eval_s. "epoch" rows hold validation accuracies;
    "test" rows (row i = after training task i) hold the test accuracy matrix. Accuracies
    are fractions; empty cells are values that do not exist.
    """
    epochs = list(doc.get("epochs") or [])
    matrix = list(doc.get("accuracy_matrix") or [])
    n = max([len(r.get("val_accuracy") or []) for r in epochs] + [len(r) for r in matrix] + [0])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    acc_cols = [f"acc_task_{j + 1}" for j in range(n)]
    writer.writerow(
        ["experiment", "row", "task", "epoch", "task_epoch", "loss", *acc_cols, "train_s", "eval_s"]
    )

    def cells(values: list[Any]) -> list[Any]:
        values = list(values) + [None] * (n - len(values))
        return ["" if v is None else v for v in values]

    for r in epochs:
        writer.writerow(
            [experiment_id, "epoch", r["task"], r["epoch"], r.get("task_epoch", ""), r["loss"],
             *cells(r.get("val_accuracy") or []), r.get("train_s", ""), r.get("eval_s", "")]
        )  # fmt: skip
    for i, row in enumerate(matrix, start=1):
        writer.writerow([experiment_id, "test", i, "", "", "", *cells(row), "", ""])
    return out.getvalue()


def csv_export(session: Session, experiment_id: int) -> Response:
    """`export.csv` of a stored experiment (`metrics_csv`), as a download."""
    experiment = store_experiments.get_experiment(session, experiment_id)
    doc = store_experiments.metrics_document(session, experiment)
    return Response(
        metrics_csv(doc, experiment_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="experiment-{experiment_id}.csv"'},
    )


def json_export(session: Session, experiment_id: int) -> Response:
    """`export.json`: the experiment and its metrics document in one file, as a download."""
    experiment = store_experiments.get_experiment(session, experiment_id)
    body = {
        "experiment": experiment_out(experiment).model_dump(mode="json"),
        "metrics": store_experiments.metrics_document(session, experiment),
    }
    return Response(
        json.dumps(jsonable_encoder(body), indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="experiment-{experiment_id}.json"'},
    )
