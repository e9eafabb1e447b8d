"""Sweeps in the store: grid expansion, grid checks, statistics over hand-made finished runs."""

from __future__ import annotations

import math

import pytest

from store import sweeps
from store.db import unit_of_work
from store.models import Experiment, JobStatus


def test_expand_grid_is_the_cartesian_product_in_key_order():
    base = {"dataset": "digits", "ewc": None, "seed": 7}
    points = sweeps.expand_grid(base, {"ewc.lambda": [1, 10], "seed": [0, 1, 2]})
    assert len(points) == 6
    assert [p for p, _ in points][:3] == [
        {"ewc.lambda": 1, "seed": 0}, {"ewc.lambda": 1, "seed": 1}, {"ewc.lambda": 1, "seed": 2},
    ]
    params, spec = points[4]
    assert params == {"ewc.lambda": 10, "seed": 1}
    assert spec == {"dataset": "digits", "ewc": {"lambda": 10}, "seed": 1}
    assert base == {"dataset": "digits", "ewc": None, "seed": 7}, "base must not be mutated"


def test_expand_grid_keeps_sibling_fields():
    [(_, spec)] = sweeps.expand_grid({"ewc": {"samples": 50}}, {"ewc.lambda": [3]})
    assert spec["ewc"] == {"samples": 50, "lambda": 3}


@pytest.mark.parametrize(
    "grid, path",
    [
        ({}, ""),
        ({"seed": []}, "seed"),
        ({"seed": 3}, "seed"),
        ({"seed": [1, 1]}, "seed"),
        ({"ewc..lambda": [1]}, "ewc..lambda"),
        ({"a": [[1, 2]]}, "a"),
        ({"seed": list(range(600))}, "seed"),
    ],
)
def test_bad_grids_name_the_path(grid, path):
    with pytest.raises(sweeps.GridError) as info:
        sweeps.expand_grid({}, grid)
    assert info.value.path == path
    assert str(info.value).startswith(f"grid {path}:")


def test_a_path_through_a_scalar_is_refused():
    with pytest.raises(sweeps.GridError, match="model is 'mlp', not an object"):
        sweeps.expand_grid({"model": "mlp"}, {"model.depth": [1]})


def test_mean_std_uses_the_sample_deviation():
    stats = sweeps.mean_std([0.6, 0.8])
    assert stats["n"] == 2 and math.isclose(stats["mean"], 0.7)
    assert math.isclose(stats["std"], math.sqrt(0.02))
    assert sweeps.mean_std([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1}
    assert sweeps.mean_std([])["mean"] is None


def test_point_statistics_over_finished_runs(session_factory, make_user, make_experiment):
    owner = make_user("ada")
    with unit_of_work(session_factory) as s:
        sweep = sweeps.create_sweep(
            s, owner_id=owner, base_spec={"dataset": "digits"},
            grid={"ewc.lambda": [1.0, 10.0], "seed": [0, 1, 2]}, name="lam",
        )
        sweep_id = sweep.id
    runs = {  # (lambda, seed) -> (status, average accuracy, forgetting)
        (1.0, 0): (JobStatus.succeeded, 0.70, 0.20),
        (1.0, 1): (JobStatus.succeeded, 0.74, 0.18),
        (1.0, 2): (JobStatus.failed, None, None),
        (10.0, 0): (JobStatus.succeeded, 0.80, 0.10),
        (10.0, 1): (JobStatus.succeeded, 0.84, 0.06),
        (10.0, 2): (JobStatus.running, None, None),
    }
    for (lam, seed), (status, avg, forg) in runs.items():
        summary = None if avg is None else {"average_accuracy": avg, "bwt": -forg, "forgetting": forg}
        make_experiment(owner, spec={"dataset": "digits", "ewc": {"lambda": lam}, "seed": seed},
                        status=status, summary=summary, sweep_id=sweep_id)
    make_experiment(owner, summary={"average_accuracy": 0.99, "bwt": 0, "forgetting": 0})  # not in it

    with unit_of_work(session_factory) as s:
        sweep = sweeps.get_sweep(s, sweep_id)
        exps = sweeps.sweep_experiments(s, sweep_id)
        rows = sweeps.point_statistics(sweep.grid, exps)
    assert len(exps) == 6
    by_lambda = {r["params"]["ewc.lambda"]: r for r in rows}
    assert set(by_lambda) == {1.0, 10.0}
    low, high = by_lambda[1.0], by_lambda[10.0]
    assert low["counts"]["succeeded"] == 2 and low["counts"]["failed"] == 1
    assert high["counts"]["running"] == 1
    assert math.isclose(low["metrics"]["average_accuracy"]["mean"], 0.72)
    assert math.isclose(high["metrics"]["average_accuracy"]["mean"], 0.82)
    assert math.isclose(high["metrics"]["average_accuracy"]["std"], math.sqrt(0.0008))
    assert math.isclose(high["metrics"]["bwt"]["mean"], -0.08)
    assert high["metrics"]["forgetting"]["n"] == 2
    # 82 ± 2.8 % against 72 ± 2.8 % over 2 seeds each: Welch's t = 3.54 at df 2, under 4.303
    assert not high["best"] and not low["best"]
    chosen = sweeps.best_point(rows)
    assert chosen["index"] is None and "within the noise" in chosen["reason"]
    assert chosen["test"]["leader"] == {"ewc.lambda": 10.0} and chosen["test"]["critical_t"] == 4.303
    assert len(high["experiment_ids"]) == 3


def test_no_best_point_before_anything_finished(session_factory, make_user, make_experiment):
    owner = make_user("bo")
    make_experiment(owner, spec={"seed": 0}, status=JobStatus.queued)
    with unit_of_work(session_factory) as s:
        rows = sweeps.point_statistics({"seed": [0]}, list(s.query(Experiment)))
    assert len(rows) == 1 and rows[0]["params"] == {} and not rows[0]["best"]
    assert rows[0]["metrics"]["average_accuracy"] == {"mean": None, "std": None, "n": 0}


def test_list_and_get_sweeps(session_factory, make_user, make_experiment):
    owner = make_user("cy")
    with unit_of_work(session_factory) as s:
        ids = [sweeps.create_sweep(s, owner_id=owner, base_spec={}, grid={"seed": [0, 1]}).id
               for _ in range(3)]
    make_experiment(owner, status=JobStatus.succeeded, sweep_id=ids[0])
    make_experiment(owner, status=JobStatus.queued, sweep_id=ids[0])
    with unit_of_work(session_factory) as s:
        listed = sweeps.list_sweeps(s)
        assert [sw.id for sw, _ in listed] == ids[::-1]
        assert listed[-1][1]["succeeded"] == 1 and listed[-1][1]["queued"] == 1
        assert [sw.id for sw, _ in sweeps.list_sweeps(s, before_id=ids[2], limit=1)] == [ids[1]]
        with pytest.raises(sweeps.SweepNotFound, match="sweep 999 does not exist"):
            sweeps.get_sweep(s, 999)


def test_grid_entries_from_the_cli_and_the_form_parse_alike() -> None:
    from api.dashboard_forms import parse_grid_text
    from store.sweeps import GridError, parse_grid_entries

    assert parse_grid_entries(["ewc.lambda=1,10", "fisher=seed", "seed=0"]) == {
        "ewc.lambda": [1, 10], "fisher": ["seed"], "seed": [0]}
    assert parse_grid_text("# a comment\newc.lambda=1,10\n\nseed=0\n")[0] == {
        "ewc.lambda": [1, 10], "seed": [0]}
    for bad in (["ewc.lambda"], ["=1"], ["seed="], ["seed=1", "seed=2"], []):
        with pytest.raises(GridError):
            parse_grid_entries(bad)
    assert "give at least one" in parse_grid_text("")[1]["grid"]
