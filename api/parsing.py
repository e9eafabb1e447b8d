"""Strict parsers for what requests carry as text: id lists, JSON typed into a form,
`Last-Event-ID`, and free text that a database must store.

Each one refuses (never crashes on) what it cannot read: Unicode digits such as `²`
(which `str.isdigit` accepts and `int` does not), integers no row can have, JSON nested
deeper than a person writes, NUL bytes and lone surrogates (which no backend stores the
same way, and which cannot be encoded in a response).
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Largest id a row can have (a PostgreSQL `integer`; SQLite refuses ≥ 2**63 outright).
MAX_ID = 2**31 - 1
#: Deepest nesting of arrays/objects accepted in JSON that a person types (a spec is 2).
MAX_JSON_DEPTH = 32
#: Longest JSON text a form field may hold (characters).
MAX_JSON_CHARS = 64 * 1024

_ASCII_DIGITS = re.compile(r"[0-9]{1,12}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class ParseError(ValueError):
    """Text that is not what it should be; the message says what is allowed."""


def parse_id(text: str, what: str = "id") -> int:
    """One row id: ASCII digits only, 1 ≤ id ≤ MAX_ID. Raises ParseError."""
    stripped = text.strip()
    if not _ASCII_DIGITS.fullmatch(stripped) or not 1 <= int(stripped) <= MAX_ID:
        raise ParseError(f"{shown(stripped)} is not {what} (an integer from 1 to {MAX_ID})")
    return int(stripped)


def parse_id_list(text: str | None, *, max_count: int, what: str = "an experiment id") -> list[int]:
    """Ids from "1,2,3": spaces allowed, duplicates dropped, order kept, empty parts skipped.

    Raises ParseError for a part that is not an id or for more than `max_count` ids.
    """
    ids: dict[int, None] = {}
    for part in (text or "").split(","):
        if part.strip():
            ids[parse_id(part, what)] = None
            if len(ids) > max_count:
                raise ParseError(f"more than {max_count} ids; give at most {max_count}")
    return list(ids)


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), counted without recursion;
    stops counting once `limit` is passed."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((v, depth) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored as text (NUL byte, lone surrogate), or None."""
    if "\x00" in value:
        return "must not contain NUL bytes (\\u0000)"
    match = _SURROGATE.search(value)
    if match:
        return f"must be valid Unicode (a lone surrogate {match.group()!a} is not)"
    return None


def json_text_problem(value: Any, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why a decoded JSON value cannot be kept (too deep, or a key or string that is not
    storable text), or None. Iterative, so no depth makes it recurse."""
    if json_depth(value, limit) > limit:
        return f"is nested more than {limit} levels deep"
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            problem = text_problem(node)
            if problem:
                return f"contains a string that {problem}"
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def loads_bounded(text: str, *, max_depth: int = MAX_JSON_DEPTH, max_chars: int = MAX_JSON_CHARS) -> Any:
    """`json.loads` for text typed into a form: at most `max_chars` characters and
    `max_depth` levels, and only storable strings. Raises ParseError, never RecursionError."""
    if len(text) > max_chars:
        raise ParseError(f"is {len(text)} characters long; at most {max_chars}")
    # Refuse deep nesting before the decoder recurses: brackets outside strings.
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise ParseError(f"is nested more than {max_depth} levels deep")
        elif ch in "]}":
            depth -= 1
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"is not valid JSON ({shown(str(exc))})") from None
    problem = json_text_problem(value, max_depth)
    if problem:
        raise ParseError(problem)
    return value


def parse_last_event_id(value: str | None) -> tuple[int, int] | None:
    """(epoch, task) from a Last-Event-ID "<epoch>.<task>" (ASCII digits, each ≤ MAX_ID);
    None when absent or not one this server sent."""
    if not value or len(value) > 32:
        return None
    epoch, sep, task = value.strip().partition(".")
    if not sep or not _ASCII_DIGITS.fullmatch(epoch) or not _ASCII_DIGITS.fullmatch(task):
        return None
    if int(epoch) > MAX_ID or int(task) > MAX_ID:
        return None
    return int(epoch), int(task)


def shown(text: str, limit: int = 80) -> str:
    """`text` quoted for an error message: shortened, and encodable whatever it holds."""
    cut = text if len(text) <= limit else text[:limit] + "…"
    return repr(cut).encode("utf-8", "backslashreplace").decode("utf-8")
