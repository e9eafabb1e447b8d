"""`GET /v1/experiments/table` (SQLite, then PostgreSQL): many runs as one table of flat
rows — `id`, `name`, `owner`, `status`, `sweep_id`, `tags`, the times, `params.*` and
`metrics.*` — as JSON (a list) and CSV, with the list's filters and sort orders, paged by
the cursor of its `X-Next-Cursor` header; "table" is never read as an experiment id."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from api.services.runs import TABLE_FIELDS
from store.models import ExperimentTag, JobStatus, utcnow

METRICS = ["metrics.average_accuracy", "metrics.bwt", "metrics.fwt", "metrics.forgetting"]


def test_json_and_csv_rows_are_flat_and_share_their_columns(api, admin_id, make_experiment):
    started = utcnow() - timedelta(seconds=90)
    a = make_experiment(
        admin_id, spec={"dataset": "digits", "ewc": {"lambda": 10.0, "samples": 50},
                        "hidden": [64, 32], "augment": True, "name": "a", "tags": ["x, y"]},
        name="a", summary={"average_accuracy": 0.875, "bwt": -0.05, "forgetting": 0.06},
        tags=[ExperimentTag(tag="x, y"), ExperimentTag(tag="z")], started_at=started,
    )  # fmt: skip
    b = make_experiment(admin_id, spec={"dataset": "mnist", "fim": {}}, status=JobStatus.queued)
    r = api.get("/v1/experiments/table")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
    assert "x-next-cursor" not in r.headers
    rows = r.json()
    assert [row["id"] for row in rows] == [b, a]
    columns = [*TABLE_FIELDS, "params.augment", "params.dataset", "params.ewc.lambda",
               "params.ewc.samples", "params.fim", "params.hidden", *METRICS]  # fmt: skip
    assert all(list(row) == columns for row in rows)
    first = rows[1]
    assert first["name"] == "a" and first["owner"] == "admin" and first["status"] == "succeeded"
    assert first["tags"] == ["x, y", "z"] and first["sweep_id"] is None
    assert first["params.ewc.lambda"] == 10.0 and first["params.hidden"] == [64, 32]
    assert first["params.augment"] is True and first["params.fim"] is None
    assert first["metrics.average_accuracy"] == 0.875 and first["metrics.fwt"] is None
    assert 89 <= first["duration_s"] <= 91 and first["created_at"].startswith("20")
    assert rows[0]["params.fim"] == {} and rows[0]["params.ewc.lambda"] is None
    assert rows[0]["duration_s"] is None and rows[0]["metrics.bwt"] is None

    r = api.get("/v1/experiments/table", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert list(table[0]) == columns and [int(t["id"]) for t in table] == [b, a]
    assert table[1]["tags"] == '["x, y","z"]' and json.loads(table[1]["tags"]) == first["tags"]
    assert table[1]["params.hidden"] == "[64,32]" and table[1]["params.augment"] == "true"
    assert float(table[1]["metrics.bwt"]) == -0.05 and table[1]["metrics.fwt"] == ""
    assert table[0]["params.fim"] == "{}" and table[0]["finished_at"] == ""


def test_the_table_takes_the_lists_filters_and_pages(api, admin_id, make_experiment):
    ids = [make_experiment(admin_id, spec={"dataset": "digits", "seed": seed},
                           summary={"average_accuracy": 0.5 + seed / 10})
           for seed in range(5)]  # fmt: skip
    params = {"filter": "params.seed >= 1", "order_by": "metrics.average_accuracy desc"}
    seen, cursor = [], None
    for fmt in ("json", "csv"):
        seen, cursor = [], None
        while True:
            page = {**params, "limit": 2, "format": fmt, **({"cursor": cursor} if cursor else {})}
            r = api.get("/v1/experiments/table", params=page)
            assert r.status_code == 200, r.text
            rows = r.json() if fmt == "json" else list(csv.DictReader(io.StringIO(r.text)))
            seen += [int(row["id"]) for row in rows]
            cursor = r.headers.get("x-next-cursor")
            if cursor is None:
                break
        assert seen == ids[:0:-1], fmt
    # the list's cursor and the table's are one: a page of one continues in the other
    listed = api.get("/v1/experiments", params={**params, "limit": 3}).json()
    rest = api.get("/v1/experiments/table", params={**params, "cursor": listed["next_cursor"]})
    assert [row["id"] for row in rest.json()] == [ids[1]]
    empty = api.get("/v1/experiments/table", params={"filter": "params.seed > 9", "format": "csv"})
    assert empty.status_code == 200
    assert empty.text.splitlines() == [",".join([*TABLE_FIELDS, *METRICS])]


def test_table_refusals_are_422s_and_table_is_no_id(api, admin_id, make_experiment):
    make_experiment(admin_id)
    for params, field in (
        ({"filter": "params.ewc.lamda > 1"}, "filter"),
        ({"order_by": "tag"}, "order_by"),
        ({"cursor": "nope"}, "cursor"),
        ({"format": "xlsx"}, "format"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
    ):
        r = api.get("/v1/experiments/table", params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["detail"][0]["field"] == field, r.json()
    r = api.get("/v1/experiments/table", params={"filter": "params.ewc.lamda > 1"})
    assert "did you mean ewc.lambda?" in r.json()["detail"][0]["message"]
    assert api.get("/v1/experiments/table", headers={"Authorization": ""}).status_code == 401
