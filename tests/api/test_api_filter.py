"""`GET /v1/experiments?filter=...&order_by=...` over HTTP (SQLite, then PostgreSQL): the
grammar of docs/filters.md reaches the database through the list, a bad filter or sort
order is a 422 naming the token and its position, a typo of a spec path gets "did you
mean", a method registered at run time is a filter key at once, and a sorted listing is
paged by cursor without skipping or repeating a run. The grammar's every case is tested
in tests/store/test_run_filter.py and tests/store/test_run_search.py."""

from __future__ import annotations

import pytest

from continual_core.methods import registered
from store import sweeps
from store.db import unit_of_work
from store.models import ExperimentTag, JobStatus
from tests.continual_core.toy_method import Toy


@pytest.fixture
def lab(api, admin_id, make_experiment, session_factory) -> dict[str, int]:
    """Five runs of the admin: names → ids (a sweep of two, tags, summaries, one queued)."""
    with unit_of_work(session_factory) as s:
        grid = sweeps.create_sweep(s, owner_id=admin_id, base_spec={}, grid={"seed": [0, 1]},
                                   name="lambdas").id  # fmt: skip
    runs = {
        "small": ({"dataset": "digits", "ewc": {"lambda": 1.0}, "seed": 0},
                  {"average_accuracy": 0.8, "bwt": -0.1}, ["baseline"], grid),
        "big": ({"dataset": "digits", "ewc": {"lambda": 100.0}, "seed": 1},
                {"average_accuracy": 0.9, "bwt": -0.02}, ["ewc"], grid),
        "mid": ({"dataset": "mnist", "ewc": {"lambda": 10.0}, "seed": 2},
                {"average_accuracy": 0.85, "bwt": -0.05}, ["ewc", "x'y"], None),
        "plain": ({"dataset": "digits", "ewc": None, "seed": 3}, None, [], None),
        "fim": ({"dataset": "digits", "fim": {"threshold": 0.001}, "seed": 4},
                {"average_accuracy": 0.7}, [], None),
    }  # fmt: skip
    ids = {}
    for name, (spec, summary, tags, sweep_id) in runs.items():
        ids[name] = make_experiment(
            admin_id, spec={**spec, "name": name}, name=name, summary=summary,
            status=JobStatus.succeeded if summary else JobStatus.queued,
            tags=[ExperimentTag(tag=t) for t in tags], sweep_id=sweep_id,
        )  # fmt: skip
    return ids


def listed(api, **params) -> list[int]:
    r = api.get("/v1/experiments", params=params)
    assert r.status_code == 200, (params, r.text)
    return [e["id"] for e in r.json()["items"]]


def test_filters_and_sort_orders_select_in_the_database(api, lab) -> None:
    i = lab
    assert listed(api, filter="params.ewc.lambda > 5") == [i["mid"], i["big"]]
    assert listed(api, filter="params.ewc.lambda >= 1 and params.dataset = 'digits'") == [
        i["big"], i["small"]
    ]  # fmt: skip
    assert listed(api, filter="params.ewc = null") == [i["fim"], i["plain"]]
    assert listed(api, filter="metrics.average_accuracy > 0.8 and status = 'succeeded'") == [
        i["mid"], i["big"]
    ]  # fmt: skip
    assert listed(api, filter="tag = 'x''y'") == [i["mid"]]
    assert listed(api, filter="tag in ('baseline', 'ewc') and sweep = 'lambdas'") == [
        i["big"], i["small"]
    ]  # fmt: skip
    assert listed(api, filter="name like 'MI%' and owner = 'admin'") == [i["mid"]]
    assert listed(api, filter="sweep = null and metrics.bwt = null") == [i["fim"], i["plain"]]
    assert listed(api, filter="sweep < 2147483647 and sweep > -2147483647") == [i["big"], i["small"]]
    # the hostile text is a bound value: it matches nothing and breaks nothing
    assert listed(api, filter="name = 'x'' or 1=1 --'") == []
    # the older parameters add conditions to the filter
    assert listed(api, filter="params.seed < 3", tag="ewc") == [i["mid"], i["big"]]
    assert listed(api, filter="params.seed < 3", status="queued") == []
    # sorting: missing values last in either direction, ties newest first
    assert listed(api, order_by="metrics.average_accuracy desc") == [
        i["big"], i["mid"], i["small"], i["fim"], i["plain"]
    ]  # fmt: skip
    assert listed(api, order_by="params.ewc.lambda") == [
        i["small"], i["mid"], i["big"], i["fim"], i["plain"]
    ]  # fmt: skip
    assert listed(api, order_by="name DESC", filter="sweep != null") == [i["small"], i["big"]]


def test_a_sorted_filtered_listing_pages_by_cursor(api, lab) -> None:
    params = {"filter": "params.seed >= 0", "order_by": "metrics.bwt desc", "limit": 2}
    seen, cursor = [], None
    while True:
        r = api.get("/v1/experiments", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        seen += [e["id"] for e in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [lab["big"], lab["mid"], lab["small"], lab["fim"], lab["plain"]]
    first = api.get("/v1/experiments", params=params).json()["next_cursor"]
    r = api.get("/v1/experiments", params={**params, "order_by": "name", "cursor": first})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "cursor"


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("filter", "metrics.acc > 1",
         "unknown key 'metrics.acc' at 1: expected one of average_accuracy, bwt"),
        ("filter", "params.ewc.lamda > 1", "unknown key 'params.ewc.lamda' at 1: did you mean ewc.lambda?"),
        ("filter", "params.seeed = 1", "unknown key 'params.seeed' at 1: did you mean seed?"),
        ("filter", "name = 3", "name compares with 'quoted text', not '3' at 8"),
        ("filter", "status = 'done'", "unknown status 'done' at 10"),
        ("filter", "tag = 'a' or tag = 'b'", "expected and or the end of the filter, not 'or' at 11"),
        ("filter", "name = 'x", "unterminated text at 8"),
        ("filter", "seed; drop table experiments", "unexpected character ';' at 5"),
        ("filter", " and ".join(["params.seed > 1"] * 40), "more than 32 conditions at 657"),
        # SQLite cannot bind an integer this large: refused alike on both backends, no 500
        ("filter", "sweep = 1e20", "a sweep id is at most 2147483647, not '1e20' at 9"),
        ("filter", "sweep in (1, -99999999999999999999)", "a sweep id is at most 2147483647"),
        ("order_by", "tag", "cannot sort by 'tag' at 1"),
        ("order_by", "metrics.bwt sideways", "expected asc, desc or the end of order_by, not 'sideways' at 13"),
    ],
)  # fmt: skip
def test_a_bad_filter_is_a_422_pointing_at_the_token(api, field, text, message) -> None:
    r = api.get("/v1/experiments", params={field: text})
    assert r.status_code == 422, r.text
    [problem] = r.json()["detail"]
    assert problem["field"] == field and problem["message"].startswith(message), problem


def test_a_method_registered_at_run_time_is_a_filter_key(api, admin_id, make_experiment) -> None:
    refused = api.get("/v1/experiments", params={"filter": "params.toy.scale > 1"})
    assert refused.status_code == 422 and "unknown key 'params.toy.scale'" in refused.text
    with registered(Toy):
        exp = make_experiment(admin_id, spec={"dataset": "digits", "toy": {"scale": 2.0}})
        assert listed(api, filter="params.toy.scale > 1") == [exp]
        assert listed(api, filter="params.toy != null", order_by="params.toy.scale") == [exp]
    assert api.get("/v1/experiments", params={"order_by": "params.toy.scale"}).status_code == 422
