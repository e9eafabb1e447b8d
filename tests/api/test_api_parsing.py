"""Issue 8 §4: the strict parsers of `api.parsing` and the always-encodable error body."""

from __future__ import annotations

import json

import pytest

from api import parsing
from api.errors import EncodableJSONResponse, problems_response


@pytest.mark.parametrize("text", ["²", "٣", "1²", "-1", "0", "+1", "1.0", "0x10", str(2**31), str(2**63), "9" * 40])
def test_parse_id_refuses_what_no_row_can_be(text) -> None:
    with pytest.raises(parsing.ParseError):
        parsing.parse_id(text)


def test_parse_id_list_keeps_order_and_drops_duplicates() -> None:
    assert parsing.parse_id_list(" 3, 1,3,,2 ", max_count=5) == [3, 1, 2]
    assert parsing.parse_id_list(str(2**31 - 1), max_count=1) == [2**31 - 1]
    with pytest.raises(parsing.ParseError, match="at most 2"):
        parsing.parse_id_list("1,2,3", max_count=2)


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_loads_bounded_refuses_deep_json_without_recursing(depth) -> None:
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth, "[" * depth):
        with pytest.raises(parsing.ParseError, match="nested more than 32"):
            parsing.loads_bounded(text, max_chars=10**7)


def test_loads_bounded_reads_ordinary_json_and_refuses_unstorable_text() -> None:
    assert parsing.loads_bounded('{"a": {"b": "[[[{"}, "c": [1, 2]}') == {"a": {"b": "[[[{"}, "c": [1, 2]}
    for bad in ('{"a": "\\u0000"}', '{"\\ud800": 1}', "{", "x" * 70_000):
        with pytest.raises(parsing.ParseError):
            parsing.loads_bounded(bad)


def test_json_depth_is_iterative() -> None:
    value: object = 1
    for _ in range(50_000):
        value = [value]
    assert parsing.json_depth(value) == 33  # stops counting once past the limit
    assert parsing.json_text_problem(value) == "is nested more than 32 levels deep"


@pytest.mark.parametrize(
    "value, expected",
    [("3.2", (3, 2)), ("0.0", (0, 0)), (None, None), ("", None), ("9" * 20 + ".1", None),
     ("1." + "9" * 20, None), ("².1", None), ("1.-2", None), ("5", None), ("1.2.3", None),
     (f"{2**31}.0", None)],
)  # fmt: skip
def test_parse_last_event_id(value, expected) -> None:
    assert parsing.parse_last_event_id(value) == expected


def test_error_bodies_can_always_be_encoded() -> None:
    response = problems_response([("grid.\ud800", "value '\udfff' is bad")])
    assert json.loads(response.body) == {
        "detail": [{"field": "grid.\ud800", "message": "value '\udfff' is bad"}]
    }
    assert json.loads(EncodableJSONResponse({"detail": "é \ud800"}).body) == {"detail": "é \ud800"}
