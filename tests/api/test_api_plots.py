"""Plots: valid PNGs of the documented size, and a clear error when there is nothing to plot."""

from __future__ import annotations

import sys

import pytest

from api import plots
from tests.fixtures.dashboard import png_size, sample_result


def test_accuracy_matrix_png_has_the_documented_size():
    png = plots.accuracy_matrix_png(sample_result(3))
    assert png_size(png) == (640, 520)
    assert png.endswith(b"IEND\xaeB`\x82")


def test_curves_png_has_the_documented_size():
    png = plots.curves_png(sample_result(4, 3))
    assert png_size(png) == (800, 450)


def test_partial_matrix_of_a_running_job_still_plots():
    result = sample_result(3)
    result["accuracy_matrix"] = result["accuracy_matrix"][:1]
    assert png_size(plots.accuracy_matrix_png(result)) == (640, 520)


def test_different_data_gives_a_different_image():
    a = plots.curves_png(sample_result(2, 2))
    b = plots.curves_png(sample_result(3, 2))
    assert a != b


@pytest.mark.parametrize("fn", [plots.accuracy_matrix_png, plots.curves_png])
def test_nothing_to_plot_is_a_typed_error(fn):
    with pytest.raises(plots.NothingToPlot):
        fn({"epochs": [], "accuracy_matrix": []})


def test_sweep_plot_with_error_bars_and_log_axis():
    points = [
        {"params": {"ewc.lambda": lam}, "metrics": {"average_accuracy": {"mean": m, "std": 0.02, "n": 3}}}
        for lam, m in ((1, 0.7), (10, 0.8), (100, 0.85), (1000, None))
    ]
    assert png_size(plots.sweep_png(points, "ewc.lambda")) == (720, 450)
    with pytest.raises(plots.NothingToPlot):
        plots.sweep_png(points[3:], "ewc.lambda")


def test_sweep_plot_with_categorical_values():
    points = [
        {"params": {"fisher": f, "ewc.lambda": 1}, "metrics": {"bwt": {"mean": -0.1, "std": 0.0, "n": 1}}}
        for f in ("empirical", "seed")
    ]
    assert png_size(plots.sweep_png(points, "fisher", "bwt")) == (720, 450)


def test_cache_renders_once_per_key():
    cache = plots.PlotCache(max_items=2)
    calls = []

    def render():
        calls.append(1)
        return b"png"

    assert cache.get_or_render(("a", 1), render) == b"png"
    assert cache.get_or_render(("a", 1), render) == b"png"
    assert len(calls) == 1
    cache.get_or_render(("b", 1), render)
    cache.get_or_render(("c", 1), render)  # evicts ("a", 1)
    cache.get_or_render(("a", 1), render)
    assert len(calls) == 4


def test_plots_module_imports_no_tensorflow():
    import subprocess

    code = "import api.plots, sys; api.plots.curves_png(%r); print('tensorflow' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code % (sample_result(2),)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
