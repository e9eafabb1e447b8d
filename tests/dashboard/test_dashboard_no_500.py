"""Issue 8 §4 on the dashboard (SQLite and PostgreSQL): Unicode digits and huge numbers in
`ids`, and JSON nested deeper than the decoder recurses in the sweep form, are answered
4xx on the page, never 500."""

from __future__ import annotations

import pytest

from tests.fixtures.dashboard import sweep_form

BAD_IDS = ["1,²", "٣", "1," + "9" * 20, str(2**63), "1,0", "x"]


@pytest.mark.parametrize("ids", BAD_IDS)
def test_progress_and_compare_parse_ids_strictly(ui, ids) -> None:
    for path in ("/ui/progress", "/ui/compare"):
        r = ui.get(path, params={"ids": ids})
        assert r.status_code == 422, (path, ids, r.status_code, r.text[:300])
    assert ui.get("/ui/progress", params={"ids": ""}).json() == {}


@pytest.mark.parametrize("depth", [9, 900, 100_000])
def test_sweep_form_refuses_deep_json(ui, depth) -> None:
    base = '{"a":' * depth + "1" + "}" * depth
    r = ui.post("/ui/sweeps", data=sweep_form(ui, base=base[:20_000], grid="seed=0"))
    assert r.status_code == 422 and "not a JSON object" in r.text, r.text[:300]
    grid = "ewc=" + "[" * depth + "]" * depth
    r = ui.post("/ui/sweeps", data=sweep_form(ui, base="{}", grid=grid[:20_000]))
    assert r.status_code == 422, (depth, r.status_code, r.text[:300])


def test_sweep_form_refuses_nul_bytes(ui) -> None:
    r = ui.post("/ui/sweeps", data=sweep_form(ui, base='{"name": "a\\u0000"}', grid="seed=0"))
    assert r.status_code == 422 and "NUL" in r.text, r.text[:300]
    r = ui.post("/ui/sweeps", data=sweep_form(ui, base="{}", grid="seed=0", name="s\x00"))
    assert r.status_code == 422 and "NUL" in r.text, r.text[:300]


def test_list_filters_with_nul_bytes_are_refused_alike_on_every_backend(ui) -> None:
    for param in ("tag", "owner"):
        r = ui.get("/ui/", params={param: "a\x00"})
        # The list page shows a filter's error on the page (as for a bad cursor).
        assert r.status_code < 500 and "NUL bytes" in r.text, (param, r.status_code, r.text[:300])
