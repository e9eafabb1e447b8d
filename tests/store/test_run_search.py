"""Runs found by what they are (`store.run_search`), on SQLite and PostgreSQL: exact result
sets and orders for every key and operator, typed spec comparisons (null and missing never
match), hostile text that stays a value, and keyset pages that neither skip nor repeat."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from store import experiments as ex
from store import sweeps, users
from store.db import unit_of_work
from store.errors import InvalidCursor
from store.jobs import finish_job
from store.models import Experiment, JobStatus
from store.run_filter import FilterError, parse_filter
from store.run_search import search_experiments, where_clause

HOSTILE = "x' or 1=1 --"
#: (owner, name, spec, tags, status, summary, sweep): ids 1..6 in this order.
RUNS = [
    ("ann", "ewc_small", {"ewc": {"lambda": 1, "samples": 100}, "fisher": "empirical",
                          "augment": False, "seed": 0}, ["baseline"], "succeeded",
     {"average_accuracy": 0.8, "bwt": -0.1, "fwt": 0.0, "forgetting": 0.12}, "grid-a"),
    ("ann", "ewc-big", {"ewc": {"lambda": 100}, "fisher": "sampled", "augment": True,
                        "seed": 1}, ["ewc", "big"], "succeeded",
     {"average_accuracy": 0.9, "bwt": -0.02, "fwt": None, "forgetting": 0.03}, "grid-a"),
    ("bob", "EWC-mid", {"ewc": {"lambda": 10.5}, "fisher": "seed", "seed": 2}, ["ewc"],
     "failed", None, None),
    ("bob", None, {"ewc": None, "fisher": "empirical", "seed": 3}, [], "queued", None, None),
    ("bob", "fim", {"ewc": {"lambda": "lots"}, "fim": {"threshold": 0.001},
                    "fisher": "empirical"}, ["x'y"], "worker",
     {"average_accuracy": 0.85, "bwt": -0.05, "fwt": 0.01}, "grid-b"),
    ("ann", HOSTILE, {"fisher": "EMPIRICAL", "seed": 5, "note": "a \"quoted\" 'note'"}, [],
     "running", {"average_accuracy": 0.9, "bwt": 0.0, "fwt": 0.02}, None),
]


@pytest.fixture
def runs(session_factory):
    with unit_of_work(session_factory) as s:
        owners = {name: users.create_user(s, name) for name in ("ann", "bob")}
        grids = {
            name: sweeps.create_sweep(s, owner_id=owners["ann"].id, base_spec={},
                                      grid={"seed": [0, 1]}, name=name)
            for name in ("grid-a", "grid-b")
        }
        for owner, name, spec, tags, status, summary, grid in RUNS:
            e = ex.create_experiment(s, owners[owner], spec, num_tasks=1, total_epochs=1,
                                     name=name, tags=tags)
            e.sweep_id = grids[grid].id if grid else None
            if status == "worker":  # finished the way a worker does: through store.jobs
                e.status, e.worker = JobStatus.running, "w1"
                s.flush()
                assert finish_job(s, e.id, "w1", JobStatus.succeeded, summary=summary)
            else:
                e.status, e.summary = JobStatus(status), summary
        s.flush()
    return session_factory


def ids(factory, filter=None, order_by=None, *, limit=100, **legacy) -> list[int]:
    """Every match, collected page by page."""
    seen, cursor = [], None
    with unit_of_work(factory) as s:
        while True:
            page = search_experiments(s, filter=filter, order_by=order_by, limit=limit,
                                      cursor=cursor, **legacy)
            seen += [e.id for e in page.items]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.ewc.lambda > 10", [3, 2]),  # 'lots' is text, null and missing never match
        ("params.ewc.lambda >= 1 and params.ewc.lambda < 100", [3, 1]),
        ("params.ewc.lambda <= 10.5", [3, 1]),
        ("params.ewc.lambda = 100", [2]),
        ("params.ewc.lambda != 100", [3, 1]),
        ("params.ewc.lambda = 'lots'", [5]),
        ("params.ewc.lambda in (1, 'lots')", [5, 1]),
        ("params.ewc.samples = 100", [1]),
        ("params.ewc = null", [6, 4]),  # JSON null, and a spec without the key
        ("params.ewc != null", [5, 3, 2, 1]),
        ("params.ewc.lambda = null", [6, 4]),
        ("params.augment = true", [2]),
        ("params.augment = false", [1]),
        ("params.augment != true", [1]),
        ("params.augment = 'true'", []),
        ("params.seed in (0, 2)", [3, 1]),
        ("params.seed > 2", [6, 4]),
        ("params.seed = '0'", []),  # text never equals a number
        ("params.fisher in ('sampled', 'seed')", [3, 2]),
        ("params.fisher like 'emp%'", [6, 5, 4, 1]),  # like ignores case
        ("params.fisher > 'f'", [3, 2]),  # 'sampled', 'seed' ('EMPIRICAL' < 'f' in bytes)
        ("params.fisher = 1", []),
        ("params.fim.threshold < 0.01", [5]),
        ("params.note = 'a \"quoted\" ''note'''", [6]),
        ("params.nothing.here = 1", []),
        ("metrics.average_accuracy > 0.8", [6, 5, 2]),
        ("metrics.average_accuracy = 0.9", [6, 2]),
        ("metrics.bwt >= -0.05 and metrics.bwt < 0", [5, 2]),
        ("metrics.bwt = null", [4, 3]),
        ("metrics.fwt != 0", [6, 5]),  # run 2's fwt is null: it never matches !=
        ("metrics.forgetting in (0.12, 0.03)", [2, 1]),
        ("status = 'succeeded'", [5, 2, 1]),
        ("status != 'succeeded'", [6, 4, 3]),
        ("status in ('failed', 'queued')", [4, 3]),
        ("tag = 'ewc'", [3, 2]),
        ("tag != 'ewc'", [6, 5, 4, 1]),  # "not tagged ewc", untagged runs included
        ("tag in ('big', 'baseline')", [2, 1]),
        ("tag like 'B%'", [2, 1]),
        ("tag = 'x''y'", [5]),
        ("tag = null", [6, 4]),
        ("tag != null", [5, 3, 2, 1]),
        ("owner = 'ann'", [6, 2, 1]),
        ("owner != 'ann'", [5, 4, 3]),
        ("owner in ('bob', 'nobody')", [5, 4, 3]),
        ("owner like 'A%'", [6, 2, 1]),
        ("owner > 'ann'", [5, 4, 3]),
        ("name = 'ewc-big'", [2]),
        ("name like 'ewc%'", [3, 2, 1]),
        ("name like 'ewc\\_%'", [1]),  # \_ is a literal underscore, _ alone any character
        ("name like 'ewc_%'", [3, 2, 1]),
        ("name != 'fim'", [6, 3, 2, 1]),  # the unnamed run never matches !=
        ("name = null", [4]),
        ("name in ('fim', 'EWC-mid')", [5, 3]),
        ("sweep = 1", [2, 1]),
        ("sweep = 'grid-b'", [5]),
        ("sweep like 'grid%'", [5, 2, 1]),
        ("sweep != 1", [5]),
        ("sweep = null", [6, 4, 3]),
        ("sweep in (2, 'grid-a')", [5, 2, 1]),
        ("params.ewc.lambda > 0 and owner = 'ann' and metrics.average_accuracy >= 0.9", [2]),
        ("", [6, 5, 4, 3, 2, 1]),
    ],
)
def test_filters_select_exactly(runs, text: str, expected: list[int]) -> None:
    assert ids(runs, text) == expected


def test_hostile_text_is_only_ever_a_value(runs) -> None:
    assert ids(runs, "name = 'x'' or 1=1 --'") == [6]
    assert ids(runs, "name = '1'' or ''1''=''1'") == []
    assert ids(runs, "owner = 'ann''; DROP TABLE experiments; --'") == []
    assert ids(runs, "tag like '%'' or ''%''=''%'") == []
    assert ids(runs, "params.fisher = '\\'' or 1=1 --'") == []
    assert ids(runs) == [6, 5, 4, 3, 2, 1]  # the table is still there, rows and all
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        compiled = where_clause(parse_filter(f"name = '{HOSTILE.replace(chr(39), 2 * chr(39))}'"
                                             " and params.ewc.lambda > 1")).compile(
            dialect=dialect
        )
        assert "1=1" not in str(compiled) and "lambda" not in str(compiled)
        assert HOSTILE in compiled.params.values()
    for hostile_key in ("params.ewc'.x = 1", "params.a;b = 1", 'params."x" = 1',
                        "params.a) or (1 = 1", "metrics.bwt) or (1 = 1"):
        with pytest.raises(FilterError):
            ids(runs, hostile_key)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (None, [6, 5, 4, 3, 2, 1]),
        ("metrics.average_accuracy desc", [6, 2, 5, 1, 4, 3]),  # ties by id desc, nulls last
        ("metrics.average_accuracy asc", [1, 5, 6, 2, 4, 3]),
        ("metrics.average_accuracy", [1, 5, 6, 2, 4, 3]),
        ("metrics.fwt desc", [6, 5, 1, 4, 3, 2]),
        ("params.ewc.lambda desc", [2, 3, 1, 5, 6, 4]),  # numbers, then text, then the rest
        ("params.ewc.lambda asc", [1, 3, 2, 5, 6, 4]),
        ("params.fisher asc", [6, 5, 4, 1, 2, 3]),  # bytes: 'EMPIRICAL' < 'empirical'
        ("name asc", [3, 2, 1, 5, 6, 4]),
        ("name desc", [6, 5, 1, 2, 3, 4]),
        ("owner desc", [5, 4, 3, 6, 2, 1]),
        ("owner asc", [6, 2, 1, 5, 4, 3]),
        ("status asc", [3, 4, 6, 5, 2, 1]),
        ("sweep asc", [2, 1, 5, 6, 4, 3]),
        ("sweep desc", [5, 2, 1, 6, 4, 3]),
    ],
)
def test_orders_are_total_and_pages_neither_skip_nor_repeat(runs, order, expected) -> None:
    assert ids(runs, order_by=order) == expected
    for limit in (1, 2, 4, 5):
        assert ids(runs, order_by=order, limit=limit) == expected


def test_filter_with_order_and_the_listing_parameters(runs) -> None:
    assert ids(runs, "params.ewc.lambda > 0", "metrics.average_accuracy desc") == [2, 1, 3]
    assert ids(runs, "params.ewc.lambda > 0", "metrics.average_accuracy desc", limit=1) == [
        2, 1, 3,
    ]
    assert ids(runs, status="succeeded", owner="ann") == [2, 1]
    assert ids(runs, "metrics.bwt < 0", status=JobStatus.succeeded, tag="ewc") == [2]
    assert ids(runs, owner="o'neil") == []
    with pytest.raises(FilterError):
        ids(runs, tag="nul\x00")


def test_cursors_belong_to_their_order(runs) -> None:
    with unit_of_work(runs) as s:
        plain = search_experiments(s, limit=2)
        listed = ex.list_experiments(s, limit=2)
        assert plain.next_cursor == listed.next_cursor  # the old listing's cursors still work
        assert [e.id for e in search_experiments(s, cursor=listed.next_cursor).items] == [
            4, 3, 2, 1,
        ]
        sorted_page = search_experiments(s, order_by="metrics.bwt desc", limit=2)
        assert [e.id for e in sorted_page.items] == [6, 2]
        for other in ("metrics.bwt asc", "metrics.fwt desc", None):
            with pytest.raises(InvalidCursor):
                search_experiments(s, order_by=other, cursor=sorted_page.next_cursor)
        for bad in ("nonsense", sorted_page.next_cursor[:-2], ex.encode_cursor(3) + "x"):
            with pytest.raises(InvalidCursor):
                search_experiments(s, order_by="metrics.bwt desc", cursor=bad)
        with pytest.raises(ValueError):
            search_experiments(s, limit=0)


def test_the_metric_columns_follow_the_summary(runs) -> None:
    with unit_of_work(runs) as s:
        row = s.execute(
            sa.select(Experiment.average_accuracy, Experiment.bwt, Experiment.fwt,
                      Experiment.forgetting).where(Experiment.id == 5)
        ).one()
        assert tuple(row) == (0.85, -0.05, 0.01, None)  # written by store.jobs.finish_job
        e = s.get(Experiment, 1)
        e.summary = {"average_accuracy": 0.5, "bwt": "n/a", "fwt": True, "extra": 1}
        s.flush()
        assert (e.average_accuracy, e.bwt, e.fwt, e.forgetting) == (0.5, None, None, None)
    assert ids(runs, "metrics.average_accuracy < 0.6") == [1]
