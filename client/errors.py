"""What the client raises: the server said no (`ApiError`), or could not be reached
(`Unreachable`); both are `ClientError`s."""

from __future__ import annotations

import httpx

from common.schemas import Problem


class ClientError(Exception):
    """Anything the client could not do."""


class Unreachable(ClientError):
    """No answer from the server (refused, timed out, name not found)."""

    def __init__(self, base_url: str, cause: Exception):
        super().__init__(f"cannot reach {base_url}: {cause}")
        self.cause = cause


class ApiError(ClientError):
    """An answer of 400 or more: its status, the server's sentence and (422) each problem."""

    def __init__(self, status_code: int, reason: str, detail: str, problems: list[Problem]):
        super().__init__(f"{status_code} {reason}: {detail}")
        self.status_code = status_code
        self.reason = reason
        self.detail = detail
        self.problems = problems

    @classmethod
    def of(cls, response: httpx.Response) -> ApiError:
        """The error of a refused request, read from its body (`ErrorMessage` or
        `ProblemList`; a body that is neither is quoted)."""
        problems: list[Problem] = []
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = response.text[:500]
        if isinstance(detail, list):
            problems = [
                Problem(
                    field=str(d.get("field", ".".join(map(str, d.get("loc", []))))),
                    message=str(d.get("message", d.get("msg"))),
                )
                for d in detail
                if isinstance(d, dict)
            ]
            detail = "; ".join(f"{p.field}: {p.message}" for p in problems)
        return cls(response.status_code, response.reason_phrase, str(detail), problems)
