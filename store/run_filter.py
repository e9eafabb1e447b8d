"""The run filter grammar: `filter=` and `order_by=` text parsed into a small typed tree.

    filter  := clause ("and" clause)*
    clause  := key op value | key "in" "(" value ("," value)* ")"
    op      := "=" | "!=" | "<" | "<=" | ">" | ">=" | "like"
    value   := number | 'text' | "text" | true | false | null
    order   := key ["asc" | "desc"]
    key     := status | tag | owner | project | name | sweep | metrics.<summary key>
             | params.<a.b.c>

Words (`and`, `in`, `like`, `asc`, `desc`, `true`, `false`, `null`) are case-insensitive;
text is quoted, a quote inside doubled (`'it''s'`). Every check that can name a token
happens here, so a bad filter is refused with one `FilterError` before any SQL exists:
an unknown key, an operator the key has no meaning for, a value of the wrong type. The
SQL side (`store.run_search`) only ever sees a valid tree, and binds every value.

The tokenizer is a dozen lines of `re`: the grammar is too small to justify a parser
dependency, and hand-written it gives exact 1-based positions for the 422 (docs/filters.md
is the user's reference).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from store.errors import InvalidInput
from store.models import SUMMARY_METRICS, JobStatus

Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "like"]
Value = float | str | bool | None

STATUSES: tuple[str, ...] = tuple(s.value for s in JobStatus)
#: The plain keys (columns of the run or of its owner, sweep, tags).
FIELDS: tuple[str, ...] = ("status", "tag", "owner", "project", "name", "sweep")
#: Keys `order_by` cannot use: a run has many tags.
UNSORTABLE: tuple[str, ...] = ("tag",)
MAX_LENGTH = 4000
MAX_CLAUSES = 32
MAX_IN_VALUES = 100
#: The largest id a row can have (PostgreSQL `integer`).
MAX_ID = 2**31 - 1

_ORDERING: frozenset[str] = frozenset({"<", "<=", ">", ">="})
_EQUALITY: frozenset[str] = frozenset({"=", "!=", "in"})
_ALL_OPS: frozenset[str] = _ORDERING | _EQUALITY | {"like"}
#: What each kind of key accepts: operators, and the types of value.
_RULES: dict[str, tuple[frozenset[str], tuple[type, ...]]] = {
    "status": (_EQUALITY, (str,)),
    "tag": (_EQUALITY | {"like"}, (str,)),
    "owner": (_ALL_OPS, (str,)),
    "project": (_ALL_OPS, (str,)),
    "name": (_ALL_OPS, (str,)),
    "sweep": (_ALL_OPS, (float, str)),  # a number is the sweep's id, text its name
    "metrics": (_ORDERING | _EQUALITY, (float,)),
    "params": (_ALL_OPS, (float, str, bool)),
}
_TYPE_WORDS = {float: "numbers", str: "'quoted text'", bool: "true or false"}
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<op><=|>=|!=|<|>|=)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)""",
    re.VERBOSE,
)


class FilterError(InvalidInput):
    """A filter or sort order the grammar refuses, with where: `position` is the 1-based
    character of `token` in the text (0 for a problem with no place, like an empty text).

    str() is the whole message, e.g. "unknown key 'metrics.acc' at 1: expected one of
    average_accuracy, bwt, fwt, forgetting". `field` is "filter" or "order_by".
    """

    def __init__(self, field: str, position: int, token: str, problem: str, hint: str = ""):
        where = f" at {position}" if position else ""
        super().__init__(f"{problem}{where}" + (f": {hint}" if hint else ""))
        self.field, self.position, self.token = field, position, token
        self.problem, self.hint = problem, hint


@dataclass(frozen=True)
class Key:
    """A key: `kind` is a plain field (status, tag, ...), "metrics" or "params"; `path` is
    the rest (("average_accuracy",), ("ewc", "lambda")), empty for plain fields."""

    kind: str
    path: tuple[str, ...]
    text: str
    position: int


@dataclass(frozen=True)
class Comparison:
    """`key op values`: one value, except for `in` (one or more)."""

    key: Key
    op: Op
    values: tuple[Value, ...]
    position: int


@dataclass(frozen=True)
class Filter:
    """Clauses joined by `and` (none: every run)."""

    clauses: tuple[Comparison, ...] = ()


@dataclass(frozen=True)
class OrderBy:
    key: Key
    descending: bool = False

    @property
    def text(self) -> str:
        """The canonical form, e.g. "metrics.average_accuracy desc"."""
        return f"{self.key.text} {'desc' if self.descending else 'asc'}"


@dataclass(frozen=True)
class _Token:
    kind: str  # string, number, op, punct, word, end
    text: str
    position: int  # 1-based

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "word" else ""


def _tokens(text: str, field: str) -> list[_Token]:
    if len(text) > MAX_LENGTH:
        raise FilterError(field, 0, "", f"{field} is {len(text)} characters long; "
                          f"at most {MAX_LENGTH} are allowed")
    tokens, at = [], 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            if text[at] in "'\"":
                raise FilterError(field, at + 1, text[at:], "unterminated text",
                                  f"close it with {text[at]}, doubling any {text[at]} inside")
            raise FilterError(field, at + 1, text[at], f"unexpected character {text[at]!r}",
                              "quote text values, e.g. name = 'ewc-1'")
        if match.lastgroup != "space":
            tokens.append(_Token(match.lastgroup or "", match.group(), at + 1))
        at = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str, field: str, param_paths: Collection[str] | None):
        self.field, self.param_paths = field, param_paths
        self.tokens, self.at = _tokens(text, field), 0

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, token: _Token, problem: str, hint: str = "") -> FilterError:
        shown = {"end": "the end", "string": token.text}.get(token.kind, repr(token.text))
        return FilterError(self.field, token.position, token.text,
                           problem.replace("{token}", shown), hint)

    def key(self, *, sortable: bool = False) -> Key:
        token = self.take()
        if token.kind != "word":
            raise self.fail(token, "expected a key, not {token}", _KEY_HINT)
        if token.word in ("or", "not"):
            raise self.fail(token, "expected a key, not {token}", _ONLY_AND)
        kind, _, rest = token.text.partition(".")
        path = tuple(rest.split(".")) if rest else ()
        if kind in FIELDS and not path:
            if sortable and kind in UNSORTABLE:
                raise self.fail(token, "cannot sort by {token}", "a run has many tags")
            return Key(kind, (), kind, token.position)
        if kind == "metrics" and len(path) == 1 and path[0] in SUMMARY_METRICS:
            return Key(kind, path, token.text, token.position)
        if kind == "metrics":
            raise self.fail(token, "unknown key {token}", _choices(rest, SUMMARY_METRICS))
        if kind == "params" and path and all(_SEGMENT.match(p) for p in path):
            if self.param_paths is None or rest in self.param_paths:
                return Key(kind, path, token.text, token.position)
            raise self.fail(token, "unknown key {token}", _choices(rest, self.param_paths))
        if kind == "params":
            raise self.fail(token, "bad key {token}",
                            "write params.<spec field>, dotted for nested fields: "
                            "params.ewc.lambda")
        raise self.fail(token, "unknown key {token}", _KEY_HINT)

    def value(self, key: Key, op: str) -> Value:
        token = self.take()
        if token.kind == "number":
            value: Value = float(token.text)
        elif token.kind == "string":
            quote = token.text[0]
            value = token.text[1:-1].replace(quote * 2, quote)
            if "\x00" in value:
                raise self.fail(token, "text must not contain NUL bytes (\\u0000)")
        elif token.word in ("true", "false"):
            value = token.word == "true"
        elif token.word == "null":
            if op not in ("=", "!="):
                raise self.fail(token, "null only compares with = or !=")
            if key.kind in ("status", "owner"):
                raise self.fail(token, f"{key.text} is never null")
            return None
        elif token.kind == "word":
            raise self.fail(token, "expected a value, not {token}",
                            f"quote text: '{token.text}'")
        else:
            raise self.fail(token, "expected a value, not {token}",
                            "a number, 'quoted text', true, false or null")
        types = _RULES[key.kind][1]
        if type(value) not in types:
            raise self.fail(token, f"{key.text} compares with "
                            f"{' or '.join(_TYPE_WORDS[t] for t in types)}, not {{token}}")
        if op == "like" and not isinstance(value, str):
            raise self.fail(token, "like takes a 'quoted pattern', not {token}", _LIKE_HINT)
        if op == "like" and not _LIKE_PATTERN.fullmatch(value):
            raise self.fail(token, "a \\ in a like pattern must escape %, _ or \\",
                            _LIKE_HINT)
        if op in _ORDERING and isinstance(value, bool):
            raise self.fail(token, f"{op} does not compare true or false")
        if key.kind == "status" and value not in STATUSES:
            raise self.fail(token, "unknown status {token}", _choices(str(value), STATUSES))
        if key.kind == "sweep" and isinstance(value, float) and not value.is_integer():
            raise self.fail(token, "a sweep id is a whole number, not {token}")
        if key.kind == "sweep" and isinstance(value, float) and abs(value) > MAX_ID:
            # ids are PostgreSQL integers; SQLite cannot even bind a number this large
            raise self.fail(token, f"a sweep id is at most {MAX_ID}, not {{token}}")
        return value

    def clause(self) -> Comparison:
        key = self.key()
        token = self.take()
        op = token.text if token.kind == "op" else token.word
        if op not in _ALL_OPS:
            raise self.fail(token, "expected an operator after " + key.text + ", not {token}",
                            "one of = != < <= > >= in like")
        ops, _ = _RULES[key.kind]
        if op not in ops:
            raise self.fail(token, f"{key.text} does not take {op}",
                            "use " + " ".join(o for o in _OP_ORDER if o in ops))
        if op != "in":
            value = self.value(key, op)
            return Comparison(key, op, (value,), key.position)  # type: ignore[arg-type]
        opening = self.take()
        if opening.text != "(":
            raise self.fail(opening, "expected ( after in, not {token}", "in ('a', 'b')")
        values = [self.value(key, "in")]
        while self.peek().text == ",":
            self.take()
            values.append(self.value(key, "in"))
        closing = self.take()
        if closing.text != ")":
            raise self.fail(closing, "expected , or ) in the list, not {token}")
        if len(values) > MAX_IN_VALUES:
            raise self.fail(opening, f"the list has {len(values)} values; "
                            f"at most {MAX_IN_VALUES} are allowed")
        return Comparison(key, "in", tuple(values), key.position)

    def end(self, expected: str) -> None:
        token = self.peek()
        if token.kind != "end":
            hint = _ONLY_AND if token.word in ("or", "not") else ""
            raise self.fail(token, f"expected {expected}, not {{token}}", hint)


_ONLY_AND = "only and joins conditions; run one query per alternative, or use in (...)"
_LIKE_HINT = "% matches any run of characters, _ any one; \\% \\_ \\\\ match themselves"
#: A like pattern whose every \ escapes %, _ or \ (PostgreSQL refuses a trailing one).
_LIKE_PATTERN = re.compile(r"(?:[^\\]|\\[%_\\])*", re.DOTALL)
_OP_ORDER = ("=", "!=", "<", "<=", ">", ">=", "in", "like")
_KEY_HINT = ("expected params.<spec field>, metrics.<summary key> or one of "
             + ", ".join(FIELDS))


def _choices(given: str, allowed: Collection[str]) -> str:
    close = difflib.get_close_matches(given, list(allowed), n=1)
    listed = ", ".join(allowed if isinstance(allowed, tuple) else sorted(allowed))
    return (f"did you mean {close[0]}? " if close else "") + f"expected one of {listed}"


def parse_filter(text: str | None, *, param_paths: Collection[str] | None = None) -> Filter:
    """The tree of a `filter=` text; an empty or blank text is the empty filter.

    `param_paths`: when given, the dotted spec paths `params.<path>` may name (e.g. every
    field of the spec model, nested ones dotted), so a typo is refused instead of matching
    nothing; when None, any dotted name of letters, digits and _ is accepted.
    Raises FilterError (field "filter").
    """
    if text is None or not text.strip():
        return Filter()
    parser = _Parser(text, "filter", param_paths)
    clauses = [parser.clause()]
    while parser.peek().word == "and":
        parser.take()
        clauses.append(parser.clause())
        if len(clauses) > MAX_CLAUSES:
            raise parser.fail(parser.peek(), f"more than {MAX_CLAUSES} conditions")
    parser.end("and or the end of the filter")
    return Filter(tuple(clauses))


def parse_order(text: str | None, *, param_paths: Collection[str] | None = None) -> OrderBy | None:
    """The sort key of an `order_by=` text ("metrics.bwt desc"; ascending by default);
    None for an empty text (newest first). Raises FilterError (field "order_by")."""
    if text is None or not text.strip():
        return None
    parser = _Parser(text, "order_by", param_paths)
    key = parser.key(sortable=True)
    descending = False
    if parser.peek().word in ("asc", "desc"):
        descending = parser.take().word == "desc"
    parser.end("asc, desc or the end of order_by")
    return OrderBy(key, descending)


def equals(kind: str, value: str) -> Comparison:
    """`kind = 'value'` for a plain field, as if parsed (the `status=`, `tag=`, `owner=`,
    `project=` query parameters); raises FilterError with `field` = kind and no position."""
    quoted = "'" + value.replace("'", "''") + "'"
    try:
        return parse_filter(f"{kind} = {quoted}").clauses[0]
    except FilterError as error:
        raise FilterError(kind, 0, value, f"{kind}: {error.problem}",
                          error.hint) from None
