"""The run filter grammar (`store.run_filter`): every operator, `and`, quoting, the types a
key takes, and refusals that name the token and its 1-based position."""

from __future__ import annotations

import pytest

from store.errors import InvalidInput
from store.run_filter import (
    MAX_CLAUSES,
    MAX_IN_VALUES,
    MAX_LENGTH,
    Comparison,
    Filter,
    FilterError,
    Key,
    OrderBy,
    equals,
    parse_filter,
    parse_order,
)


def one(text: str) -> Comparison:
    (clause,) = parse_filter(text).clauses
    return clause


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_every_comparison_operator_on_a_number(op: str) -> None:
    clause = one(f"params.ewc.lambda {op} 10")
    assert clause == Comparison(
        Key("params", ("ewc", "lambda"), "params.ewc.lambda", 1), op, (10.0,), 1
    )


def test_in_like_and_and() -> None:
    text = (
        "metrics.bwt >= -1.5e-2 AND tag IN ('a', \"b\",'c') and name LIKE 'ewc%'"
        " and params.augment = TRUE and sweep = null and params.fisher != 'seed'"
    )
    flt = parse_filter(text)
    assert [(c.key.text, c.op, c.values, c.position) for c in flt.clauses] == [
        ("metrics.bwt", ">=", (-0.015,), 1),
        ("tag", "in", ("a", "b", "c"), text.index("tag") + 1),
        ("name", "like", ("ewc%",), text.index("name") + 1),
        ("params.augment", "=", (True,), text.index("params.augment") + 1),
        ("sweep", "=", (None,), text.index("sweep") + 1),
        ("params.fisher", "!=", ("seed",), text.index("params.fisher") + 1),
    ]
    assert flt.clauses[1].position == 28


def test_quoting_doubles_the_quote_and_keeps_everything_else() -> None:
    assert one("name = 'x'' or 1=1 --'").values == ("x' or 1=1 --",)
    assert one('name = "say ""hi"" -- ; DROP TABLE users"').values == (
        'say "hi" -- ; DROP TABLE users',
    )
    assert one("name = 'a \"b\" c'").values == ('a "b" c',)
    assert one("name = ''").values == ("",)
    assert one("owner = 'ünï çødé'").values == ("ünï çødé",)
    assert one("params.x = 'true'").values == ("true",)  # quoted: text, not a boolean
    assert one("params.x = '10'").values == ("10",)


def test_numbers_status_sweep_and_empty_filters() -> None:
    assert [one(f"params.seed = {n}").values[0] for n in ("3", "-2", "+.5", "1e3", "2.")] == [
        3.0, -2.0, 0.5, 1000.0, 2.0,
    ]
    assert one("status in ('queued', 'running')").values == ("queued", "running")
    assert one("sweep = 12").values == (12.0,) and one("sweep = 'grid'").values == ("grid",)
    assert parse_filter(None) == parse_filter("") == parse_filter("   ") == Filter()
    assert equals("owner", "o'neil") == Comparison(Key("owner", (), "owner", 1), "=",
                                                   ("o'neil",), 1)


def test_the_listing_parameters_are_refused_under_their_own_name() -> None:
    with pytest.raises(FilterError) as refused:
        equals("tag", "nul\x00")
    assert (refused.value.field, refused.value.position) == ("tag", 0)
    assert str(refused.value) == "tag: text must not contain NUL bytes (\\u0000)"
    with pytest.raises(FilterError, match="^status: unknown status 'done': expected one of queued, running") as refused:
        equals("status", "done")
    assert refused.value.field == "status"


def test_param_paths_allow_list() -> None:
    allowed = {"ewc.lambda", "fisher"}
    assert one("params.fisher = 'seed'").key.path == ("fisher",)
    assert parse_filter("params.ewc.lambda > 1", param_paths=allowed).clauses[0].key.path == (
        "ewc", "lambda",
    )
    with pytest.raises(FilterError) as refused:
        parse_filter("params.ewc.lamda > 1", param_paths=allowed)
    assert str(refused.value) == (
        "unknown key 'params.ewc.lamda' at 1: did you mean ewc.lambda? "
        "expected one of ewc.lambda, fisher"
    )


def refusal(text: str, *, order: bool = False) -> tuple[str, int, str]:
    with pytest.raises(FilterError) as refused:
        (parse_order if order else parse_filter)(text)
    error = refused.value
    assert isinstance(error, InvalidInput)  # the API's 422
    assert error.field == ("order_by" if order else "filter")
    return str(error), error.position, error.token


@pytest.mark.parametrize(
    ("text", "message", "position", "token"),
    [
        ("metrics.acc > 0.5", ("unknown key 'metrics.acc' at 1: expected one of "
         "average_accuracy, bwt, fwt, forgetting"), 1, "metrics.acc"),
        ("metrics.accuracy > 0.5", ("unknown key 'metrics.accuracy' at 1: did you mean "
         "average_accuracy? expected one of average_accuracy, bwt, fwt, forgetting"), 1,
         "metrics.accuracy"),
        ("colour = 'red'", ("unknown key 'colour' at 1: expected params.<spec field>, "
         "metrics.<summary key> or one of status, tag, owner, project, name, sweep"), 1, "colour"),
        ("params. = 1", ("bad key 'params.' at 1: write params.<spec field>, dotted for "
         "nested fields: params.ewc.lambda"), 1, "params."),
        ("params.ewc..lambda = 1", None, 1, "params.ewc..lambda"),
        ("status = 'runing'", ("unknown status 'runing' at 10: did you mean running? expected "
         "one of queued, running, succeeded, failed, cancelled"), 10, "'runing'"),
        ("status = running", "expected a value, not 'running' at 10: quote text: 'running'",
         10, "running"),
        ("status < 'queued'", "status does not take < at 8: use = != in", 8, "<"),
        ("tag >= 'a'", "tag does not take >= at 5: use = != in like", 5, ">="),
        ("metrics.bwt like '1%'", ("metrics.bwt does not take like at 13: use = != < <= > >= "
         "in"), 13, "like"),
        ("metrics.bwt > 'low'", "metrics.bwt compares with numbers, not 'low' at 15", 15,
         "'low'"),
        ("name = 3", "name compares with 'quoted text', not '3' at 8", 8, "3"),
        ("owner = true", "owner compares with 'quoted text', not 'true' at 9", 9, "true"),
        ("params.fisher like 3", None, 20, "3"),
        ("params.augment > true", "> does not compare true or false at 18", 18, "true"),
        ("name < null", "null only compares with = or != at 8", 8, "null"),
        ("status = null", "status is never null at 10", 10, "null"),
        ("sweep = 1.5", "a sweep id is a whole number, not '1.5' at 9", 9, "1.5"),
        ("name = 'open", "unterminated text at 8: close it with ', doubling any ' inside", 8,
         "'open"),
        ("name = 'a' or name = 'b'", ("expected and or the end of the filter, not 'or' at 12: "
         "only and joins conditions; run one query per alternative, or use in (...)"), 12,
         "or"),
        ("not name = 'a'", "expected a key, not 'not' at 1: only and joins", 1, "not"),
        ("name = 'a' and", "expected a key, not the end at 15", 15, ""),
        ("name 'a'", "expected an operator after name, not 'a' at 6", 6, "'a'"),
        ("name == 'a'", "expected a value, not '=' at 7", 7, "="),
        ("name @ 'a'", ("unexpected character '@' at 6: quote text values, e.g. name = "
         "'ewc-1'"), 6, "@"),
        ("name = 'a'; DROP TABLE users", "unexpected character ';' at 11", 11, ";"),
        ("tag in 'a'", "expected ( after in, not 'a' at 8: in ('a', 'b')", 8, "'a'"),
        ("tag in ('a' 'b')", "expected , or ) in the list, not 'b' at 13", 13, "'b'"),
        ("tag in ()", "expected a value, not ')' at 9", 9, ")"),
        ("tag in ('a', null)", "null only compares with = or != at 14", 14, "null"),
        ("name like 'a\\'", "a \\ in a like pattern must escape %, _ or \\ at 11", 11,
         "'a\\'"),
        ("name = 'nul\x00'", "text must not contain NUL bytes (\\u0000) at 8", 8,
         "'nul\x00'"),
    ],
)
def test_refusals_name_the_token_and_where_it_is(text, message, position, token) -> None:
    got_message, got_position, got_token = refusal(text)
    if message is not None:
        assert got_message.startswith(message)
    assert (got_position, got_token) == (position, token)
    assert text[position - 1:].startswith(token) or token == ""


def test_like_escapes_are_accepted() -> None:
    assert one("name like 'ewc\\_%'").values == ("ewc\\_%",)
    assert one("name like '100\\%\\\\'").values == ("100\\%\\\\",)


def test_sizes_are_bounded() -> None:
    assert "at most" in refusal("name = '" + "x" * MAX_LENGTH + "'")[0]
    many = " and ".join(["metrics.bwt > 0"] * (MAX_CLAUSES + 1))
    assert f"more than {MAX_CLAUSES} conditions" in refusal(many)[0]
    assert len(parse_filter(" and ".join(["metrics.bwt > 0"] * MAX_CLAUSES)).clauses) == 32
    values = ", ".join(["1"] * (MAX_IN_VALUES + 1))
    assert f"at most {MAX_IN_VALUES}" in refusal(f"params.seed in ({values})")[0]


def test_order_by() -> None:
    assert parse_order("metrics.average_accuracy desc") == OrderBy(
        Key("metrics", ("average_accuracy",), "metrics.average_accuracy", 1), True
    )
    assert parse_order("params.ewc.lambda").text == "params.ewc.lambda asc"
    assert parse_order("  owner ASC ").text == "owner asc"
    assert parse_order("name DESC").descending
    assert parse_order(None) is None and parse_order(" ") is None
    assert refusal("tag", order=True) == ("cannot sort by 'tag' at 1: a run has many tags",
                                          1, "tag")
    assert refusal("metrics.bwt up", order=True)[1:] == (13, "up")
    assert refusal("metrics.bwt desc, name", order=True)[1:] == (17, ",")
    assert refusal("metrics.loss desc", order=True)[0].startswith("unknown key 'metrics.loss'")
