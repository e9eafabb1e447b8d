"""Overlay plots of several runs (`GET /v1/experiments/compare/plot.png`): the drawn
series are the stored metrics (read back from the figure's lines), the average is the one
of `continual_core.metrics`, and every refusal is a 4xx that says why — over HTTP on the
real app and database, and on the dashboard's compare page."""

from __future__ import annotations

import math

import pytest

from api import plots_compare as pc
from continual_core.metrics import average_accuracy
from store.models import JobStatus
from tests.fixtures.dashboard import png_size, sample_result, ui  # noqa: F401 - ui: a fixture

EWC = {"dataset": "digits", "splits": 3, "ewc": {"lambda": 100.0}, "name": "with EWC"}
PLAIN = {"dataset": "digits", "splits": 3, "ewc": None, "name": "plain"}


def other_result(num_tasks: int = 3) -> dict:
    """`sample_result` shifted: other accuracies and losses, so the runs differ."""
    result = sample_result(num_tasks)
    result["epochs"] = [
        {
            **e,
            "loss": 2 * e["loss"],
            "val_accuracy": [round(v - 0.05, 4) for v in e["val_accuracy"]],
        }
        for e in result["epochs"]
    ]
    result["accuracy_matrix"] = [[round(v + 0.02 * i, 4) for v in row]
                                 for i, row in enumerate(result["accuracy_matrix"])]  # fmt: skip
    return result


def ydata(line) -> list[float]:
    return [round(float(y), 6) for y in line.get_ydata()]


# What is drawn -----------------------------------------------------------------------------


def test_accuracy_lines_are_each_runs_validation_accuracy_per_task():
    a, b = pc.Run("#1 a", sample_result(3)), pc.Run("#2 b", other_result(3))
    ax = pc.compare_figure("accuracy", [a, b]).axes[0]
    lines = [line for line in ax.lines if len(line.get_xdata()) > 2]  # not the task boundaries
    assert len(lines) == 6  # 2 runs × 3 tasks
    for k, run in enumerate((a, b)):
        colour = lines[3 * k].get_color()
        for j in range(3):
            line = lines[3 * k + j]
            assert line.get_color() == colour  # one colour per run
            assert line.get_linestyle() == {0: "-", 1: "--", 2: ":"}[j]  # a style per task
            assert list(line.get_xdata()) == [e["epoch"] for e in run.epochs]
            assert ydata(line) == [round(100 * e["val_accuracy"][j], 6) for e in run.epochs]
    assert lines[0].get_color() != lines[3].get_color()
    legend_texts = {t.get_text() for legend in [*ax.artists, ax.get_legend()] for t in legend.texts}
    assert {"#1 a", "#2 b", "task 1", "task 3"} <= legend_texts


def test_the_average_is_over_the_tasks_seen_and_ends_at_the_summarys_average():
    result = sample_result(3)
    run = pc.Run("#1", result)
    ax = pc.compare_figure("average", [run]).axes[0]
    curve, markers = ax.lines[-2], ax.lines[-1]
    expected = []
    for e in result["epochs"]:
        seen = e["val_accuracy"][: e["task"]]
        expected.append(round(100 * sum(seen) / len(seen), 6))
    assert ydata(curve) == expected
    matrix = result["accuracy_matrix"]
    assert list(markers.get_xdata()) == [2, 4, 6]  # the last epoch of each task
    assert ydata(markers) == [
        round(100 * sum(r[: k + 1]) / (k + 1), 6) for k, r in enumerate(matrix)
    ]
    # After the last task, "seen" is every task: continual_core.metrics' average accuracy.
    assert markers.get_ydata()[-1] == pytest.approx(100 * average_accuracy(matrix))
    assert pc.matrix_averages(matrix)[-1] == pytest.approx(average_accuracy(matrix))


def test_loss_lines_and_a_log_axis_for_a_wide_range():
    a, b = pc.Run("#1", sample_result(3)), pc.Run("#2", other_result(3))
    ax = pc.compare_figure("loss", [a, b]).axes[0]
    lines = [line for line in ax.lines if len(line.get_xdata()) > 2]
    assert [ydata(line) for line in lines] == [
        [round(e["loss"], 6) for e in run.epochs] for run in (a, b)
    ]
    assert ax.get_yscale() == "linear"  # 1/6 .. 2: one decade
    wide = sample_result(3, 40)  # loss 1/n over 120 epochs
    assert pc.compare_figure("loss", [pc.Run("#3", wide)]).axes[0].get_yscale() == "log"


def test_diff_is_b_minus_a_in_points_on_a_colour_map_centred_at_zero():
    a, b = sample_result(3), other_result(3)
    fig = pc.compare_figure("diff", [pc.Run("#1 a", a), pc.Run("#2 b", b)])
    image = fig.axes[0].images[0]
    values = image.get_array()
    for i in range(3):
        for j in range(3):
            want = 100 * b["accuracy_matrix"][i][j] - 100 * a["accuracy_matrix"][i][j]
            assert values[i][j] == pytest.approx(want)
    low, high = image.get_clim()
    assert low == -high and high >= max(abs(v) for row in values for v in row)
    assert image.get_cmap().name == "RdBu"
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert "+4.0" in texts  # row 3 (after task 3): +2 × 2 points
    assert "#2 b" in fig.axes[0].get_title() and "#1 a" in fig.axes[0].get_title()


def test_runs_of_different_task_counts_share_the_curves_but_not_a_diff():
    three, five = pc.Run("#1 three", sample_result(3)), pc.Run("#2 five", sample_result(5))
    for kind in ("accuracy", "average", "loss"):
        assert png_size(pc.compare_png(kind, [three, five])) == (960, 540)
    with pytest.raises(pc.Mismatch, match="#1 three has 3 tasks and #2 five 5"):
        pc.compare_png("diff", [three, five])
    with pytest.raises(pc.Mismatch, match="exactly two"):
        pc.compare_png("diff", [three])
    empty = pc.Run("#3 queued", {"epochs": [], "accuracy_matrix": []})
    with pytest.raises(pc.NothingToPlot):
        pc.compare_png("accuracy", [empty])
    with pytest.raises(pc.NothingToPlot, match="#3 queued"):
        pc.compare_png("diff", [three, empty])
    assert png_size(pc.compare_png("accuracy", [three, empty])) == (960, 540)


def test_a_missing_value_is_a_gap_not_a_crash():
    result = sample_result(2)
    result["epochs"][0]["val_accuracy"] = [0.5, None]
    ax = pc.compare_figure("accuracy", [pc.Run("#1", result)]).axes[0]
    assert any(math.isnan(y) for line in ax.lines for y in line.get_ydata())


# Over HTTP ---------------------------------------------------------------------------------


@pytest.fixture
def pair(admin_id, make_experiment) -> tuple[int, int]:
    return (make_experiment(admin_id, spec=PLAIN, result=sample_result(3), name="plain"),
            make_experiment(admin_id, spec=EWC, result=other_result(3), name="with EWC"))  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "size"),
    [("accuracy", (960, 540)), ("average", (960, 540)), ("loss", (960, 540)), ("diff", (720, 560))],
)
def test_every_kind_is_a_png(api, pair, kind, size):
    r = api.get("/v1/experiments/compare/plot.png", params={"ids": ",".join(map(str, pair)),
                                                            "kind": kind})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and png_size(r.content) == size


def test_labels_name_the_run_and_its_lambda(api, pair, session_factory):
    from api.services import reports
    from store.models import Experiment

    with session_factory() as s:
        labels = [reports.run_label(s.get(Experiment, i)) for i in pair]
    assert labels == [f"#{pair[0]} plain (no method)", f"#{pair[1]} with EWC (λ=100)"]


def test_the_image_is_cached_until_a_run_changes(api, pair):
    params = {"ids": f"{pair[0]},{pair[1]}", "kind": "accuracy"}
    first = api.get("/v1/experiments/compare/plot.png", params=params).content
    cache = api.app.state.plot_cache
    misses = cache.misses
    assert api.get("/v1/experiments/compare/plot.png", params=params).content == first
    assert cache.misses == misses
    swapped = api.get("/v1/experiments/compare/plot.png",
                      params={**params, "ids": f"{pair[1]},{pair[0]}"})  # fmt: skip
    assert swapped.status_code == 200 and cache.misses == misses + 1  # another legend order


def test_refusals_say_why(api, admin_id, pair, make_experiment):
    url = "/v1/experiments/compare/plot.png"
    a, b = pair
    five = make_experiment(admin_id, result=sample_result(5), name="five")
    queued = make_experiment(admin_id, status=JobStatus.queued)

    def problem(params) -> str:
        r = api.get(url, params=params)
        assert r.status_code == 422, (params, r.text)
        [p] = r.json()["detail"]
        return f"{p['field']}: {p['message']}"

    assert "exactly two" in problem({"ids": f"{a},{b},{five}", "kind": "diff"})
    assert "exactly two" in problem({"ids": f"{a}", "kind": "diff"})
    mismatch = problem({"ids": f"{a},{five}", "kind": "diff"})
    assert mismatch.startswith("ids:") and "3 tasks" in mismatch and "5" in mismatch
    assert "at most 10" in problem({"ids": ",".join(str(i) for i in range(1, 12))})
    assert problem({"ids": "1,x"}).startswith("ids:")
    assert problem({"ids": ""}).startswith("ids:")
    assert problem({"ids": f"{a}", "kind": "pie"}).startswith("kind:")
    r = api.get(url, params={"ids": f"{a},998,999"})
    assert r.status_code == 404 and r.json()["detail"] == "experiments 998, 999 do not exist"
    r = api.get(url, params={"ids": f"{queued}"})
    assert r.status_code == 409 and "finished an epoch" in r.json()["detail"]
    assert api.get(url, params={"ids": f"{a},{five}"}).status_code == 200  # curves: fine
    assert api.get(url, params={"ids": f"{a}"}, headers={"Authorization": ""}).status_code == 401


def test_the_route_is_documented_as_a_png_and_not_shadowed():
    from api.app import create_app
    from api.routes import ROUTERS
    from common.settings import Settings
    from tests.api.test_api_layout import shadowed

    assert not [s for s in shadowed(ROUTERS) if "compare" in s[1]]
    op = create_app(Settings(_env_file=None)).openapi()["paths"]["/v1/experiments/compare/plot.png"]
    op = op["get"]
    assert op["operationId"] == "compare_plot"
    assert op["responses"]["200"]["content"] == {
        "image/png": {"schema": {"type": "string", "format": "binary"}}
    }
    assert {"404", "409", "422"} <= set(op["responses"])
    kind = next(p for p in op["parameters"] if p["name"] == "kind")
    assert kind["schema"]["enum"] == ["accuracy", "average", "loss", "diff"]


# The dashboard -----------------------------------------------------------------------------


def test_the_compare_page_shows_the_overlays_above_each_runs_plots(ui, pair):  # noqa: F811
    a, b = pair
    page = ui.get("/ui/compare", params={"ids": f"{a},{b}"}).text
    for kind in ("accuracy", "average", "loss", "diff"):
        assert f'id="overlay-{kind}"' in page
        assert f"/ui/compare/plot.png?ids={a},{b}&amp;kind={kind}" in page
    assert page.index('id="overlay-accuracy"') < page.index(f"/ui/experiments/{a}/plots/curves.png")
    img = ui.get("/ui/compare/plot.png", params={"ids": f"{a},{b}", "kind": "average"})
    assert img.status_code == 200 and png_size(img.content) == (960, 540)
    three = ui.get("/ui/compare", params={"ids": f"{a},{b},{a}"}).text  # duplicates dropped
    assert 'id="overlay-diff"' in three  # still two runs
    assert ui.get("/ui/compare/plot.png", params={"ids": f"{a}", "kind": "diff"}).status_code == 422
    assert ui.get("/ui/compare/plot.png", params={"ids": f"{a}", "kind": "pie"}).status_code == 404
    assert ui.get("/ui/compare/plot.png", params={"ids": "777"}).status_code == 404
