"""The dashboard's experiment list finds runs by what they are (SQLite, then PostgreSQL):
its filter box takes the grammar of docs/filters.md, its column headers sort (links with
`order_by`, the second click descending), a bad filter or sort order is a 422 page that
shows the message (never a 500), the sweep column links each run's sweep, and the next
page keeps the filter and the order."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from store import sweeps
from store.db import unit_of_work
from store.models import JobStatus

ROW = re.compile(r'<tr data-id="(\d+)"')


def rows(page) -> list[int]:
    return [int(i) for i in ROW.findall(page.text)]


def header_link(page, column: str) -> str:
    found = re.search(rf'<a class="sort" data-sort="{column}" href="([^"]+)"', page.text)
    assert found, page.text[:2000]
    return html.unescape(found.group(1))


@pytest.fixture
def lab(ui, admin_id, make_experiment, session_factory) -> list[int]:
    with unit_of_work(session_factory) as s:
        grid = sweeps.create_sweep(s, owner_id=admin_id, base_spec={}, grid={"seed": [0]},
                                   name="lams").id  # fmt: skip
    return [
        make_experiment(admin_id, spec={"dataset": "digits", "ewc": {"lambda": lam}}, name=name,
                        summary={"average_accuracy": acc, "bwt": bwt}, sweep_id=sweep)
        for name, lam, acc, bwt, sweep in (("b-small", 1.0, 0.7, -0.2, grid),
                                           ("a-big", 100.0, 0.9, -0.01, grid),
                                           ("c-mid", 10.0, 0.8, -0.05, None))
    ]  # fmt: skip


def test_the_filter_box_selects_and_keeps_its_text(ui, lab) -> None:
    small, big, mid = lab
    page = ui.get("/ui/", params={"filter": "params.ewc.lambda >= 10 and name != 'x'"})
    assert page.status_code == 200 and rows(page) == [mid, big]
    assert 'value="params.ewc.lambda &gt;= 10 and name != &#39;x&#39;"' in page.text
    assert rows(ui.get("/ui/", params={"filter": "sweep = 'lams'", "status": "succeeded"})) == [
        big, small
    ]  # fmt: skip
    none = ui.get("/ui/", params={"filter": "params.ewc.lambda > 1000"})
    assert rows(none) == [] and "No experiment matches this filter" in none.text


def test_headers_sort_and_the_second_click_descends(ui, lab) -> None:
    small, big, mid = lab
    first = ui.get("/ui/")
    link = header_link(first, "name")
    assert parse_qs(urlsplit(link).query) == {"order_by": ["name"]}
    by_name = ui.get(link)
    assert rows(by_name) == [big, small, mid]
    assert '<th aria-sort="ascending"><a class="sort" data-sort="name"' in by_name.text
    descending = ui.get(header_link(by_name, "name"))
    assert rows(descending) == [mid, small, big] and 'aria-sort="descending"' in descending.text
    # a header keeps the filter; the filter form keeps the order
    filtered = ui.get("/ui/", params={"filter": "params.ewc.lambda > 1"})
    query = parse_qs(urlsplit(header_link(filtered, "avg")).query)
    assert query == {"filter": ["params.ewc.lambda > 1"], "order_by": ["metrics.average_accuracy"]}
    assert rows(ui.get(header_link(filtered, "avg"))) == [mid, big]
    assert rows(ui.get("/ui/", params={"order_by": "metrics.bwt desc"})) == [big, mid, small]
    assert rows(ui.get("/ui/", params={"order_by": "params.ewc.lambda desc"})) == [big, mid, small]


def test_the_sweep_column_links_the_sweep(ui, lab) -> None:
    page = ui.get("/ui/")
    sweep_cells = re.findall(r'<td class="sweep">(.*?)</td>', page.text)
    assert len(sweep_cells) == 3 and sweep_cells[0] == ""  # newest first: c-mid has none
    assert re.fullmatch(r'<a href="/ui/sweeps/(\d+)">#\1</a>', sweep_cells[1]), sweep_cells


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter": "params.ewc.lamda > 1"},
         "filter: unknown key &#39;params.ewc.lamda&#39; at 1: did you mean ewc.lambda?"),
        ({"filter": "name = <script>"}, "filter: expected a value, not &#39;&lt;&#39; at 8"),
        ({"order_by": "tag"}, "order_by: cannot sort by &#39;tag&#39; at 1"),
        ({"filter": "status = 'done'", "order_by": "name"}, "unknown status &#39;done&#39; at 10"),
    ],
)  # fmt: skip
def test_a_bad_filter_is_a_422_page_with_the_message(ui, lab, params, message) -> None:
    page = ui.get("/ui/", params=params)
    assert page.status_code == 422 and message in page.text, page.text[:3000]
    assert rows(page) == [] and "<script>" not in page.text
    assert 'role="alert"' in page.text and 'name="filter"' in page.text  # the form stays


def test_the_next_page_keeps_the_filter_and_the_order(ui, admin_id, make_experiment) -> None:
    ids = [make_experiment(admin_id, spec={"dataset": "digits", "seed": i},
                           summary={"average_accuracy": i / 100}, status=JobStatus.succeeded)
           for i in range(53)]  # fmt: skip
    make_experiment(admin_id, spec={"dataset": "digits", "seed": 99}, status=JobStatus.queued)
    params = {"filter": "status = 'succeeded'", "order_by": "metrics.average_accuracy"}
    first = ui.get("/ui/", params=params)
    assert rows(first) == ids[:50]
    older = re.search(r'id="next-page" href="([^"]+)"', first.text)
    assert older, first.text[-2000:]
    query = parse_qs(urlsplit(html.unescape(older.group(1))).query)
    assert query["filter"] == [params["filter"]] and query["order_by"] == [params["order_by"]]
    assert rows(ui.get(html.unescape(older.group(1)))) == ids[50:]
