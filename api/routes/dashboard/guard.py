"""What a dashboard form must be before it may change anything.

Every state-changing dashboard request (a POST: log in, log out, cancel, submit, sweep) is
checked in three ways, and refused with 403 otherwise:

1. it comes from the dashboard's own pages: a browser's `Sec-Fetch-Site`, when sent, is
   `same-origin`, and its `Origin`, when sent, is this server (the `Host`, or the
   `X-Forwarded-Host` a proxy set). A page on another port of the same host, or on a sibling
   subdomain, is same-*site*, so the SameSite cookie alone does not stop it; this does;
2. it is a form (`application/x-www-form-urlencoded`, 415 otherwise) carrying the form token
   of the browser's session (or, for the login form, the token of the login page's cookie),
   which another page cannot read;
3. it is the form the page renders: no field twice, no field the form lacks, every field
   it always sends (422 otherwise).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import Request

#: The hidden field of every dashboard form that holds the session's form token.
CSRF_FIELD = "csrf_token"
FORM_TYPE = "application/x-www-form-urlencoded"


class Refused(Exception):
    """A dashboard POST that is not accepted: the status code and what to tell the user."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _host(value: str) -> str:
    return value.strip().lower()


def check_same_origin(request: Request) -> None:
    """Refuse (403) a request a browser says comes from another origin."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        raise Refused(403, f"refused: this form was sent from another site or port ({site}); "
                      "use the dashboard's own pages")  # fmt: skip
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser form (browsers send Origin with every POST): the token decides
    hosts = {_host(request.headers.get("host", ""))}
    hosts |= {_host(h) for h in request.headers.get("x-forwarded-host", "").split(",") if h.strip()}
    netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
    if not netloc or netloc not in hosts:
        raise Refused(403, "refused: this form was sent from another origin "
                      f"({origin[:100]!a}); use the dashboard's own pages")  # fmt: skip


async def read_form(
    request: Request, expected_token: str | None, fields: Iterable[str], required: Iterable[str]
) -> dict[str, str]:
    """The posted form as {field: value}, if it carries the expected form token and is one
    the page renders (see the module)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        shown = ascii(content_type[:60]) if content_type else "no form fields"
        raise Refused(415, f"refused: this form takes the fields of its page ({FORM_TYPE}), "
                      f"not {shown}")  # fmt: skip
    form = await request.form()
    check_token(form.get(CSRF_FIELD), expected_token)
    allowed = {*fields, CSRF_FIELD}
    items = form.multi_items()
    names = [name for name, _value in items]
    unknown = sorted({n for n in names if n not in allowed})
    if unknown:
        raise Refused(422, "refused: this form has no field "
                      + ", ".join(ascii(n[:40]) for n in unknown[:5]))  # fmt: skip
    twice = sorted(n for n, count in Counter(names).items() if count > 1)
    if twice:
        raise Refused(422, "refused: field " + ", ".join(ascii(n) for n in twice[:5])
                      + " is given more than once")  # fmt: skip
    values = {name: value for name, value in items if isinstance(value, str)}
    missing = sorted(set(required) - values.keys())
    if missing:
        raise Refused(422, "refused: the form lacks " + ", ".join(missing)
                      + " (send it from the dashboard's page)")  # fmt: skip
    return values


def check_token(sent: object, expected: str | None) -> None:
    """Refuse (403) a form whose token is missing or not the expected one."""
    if not isinstance(sent, str) or not expected:
        raise Refused(403, _BAD_TOKEN)
    if not secrets.compare_digest(sent.encode(), expected.encode()):
        raise Refused(403, _BAD_TOKEN)


_BAD_TOKEN = (
    "refused: the form's token is missing or out of date (it must come from the dashboard's "
    "own page); reload the page and send the form again"
)


async def posted_form(
    request: Request, expected_token: str | None, fields: Iterable[str], required: Iterable[str]
) -> dict[str, str]:
    """The checked form of a dashboard POST (origin, then shape and token); raises `Refused`."""
    check_same_origin(request)
    return await read_form(request, expected_token, fields, required)
