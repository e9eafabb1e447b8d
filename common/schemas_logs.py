"""The bodies of `GET /v1/experiments/{id}/logs` (pydantic), shared by the API and the
Python client, like `common.schemas`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class LogLineOut(BaseModel):
    """One captured line of a job's log."""

    id: int = Field(description="Increasing within a log: pass the last one as `after`")
    attempt: int = Field(description="Which run of the job wrote it (1, then 2 after a resume)")
    level: str = Field(
        description="DEBUG, INFO, WARNING, ERROR, CRITICAL, or END (the line ending an attempt)"
    )
    time: datetime = Field(description="When the worker logged it (UTC)")
    message: str = Field(description="`<logger> <text>`; a traceback spans several lines")

    def text(self) -> str:
        """The line as text: `<time> <level> [attempt <n>] <message>` (`?format=text`)."""
        stamp = self.time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return f"{stamp} {self.level} [attempt {self.attempt}] {self.message}"


class LogPage(BaseModel):
    """Lines of a job's log after a cursor."""

    lines: list[LogLineOut]
    next_after: int = Field(description="The `after` of the next page (the last id here)")
    finished: bool = Field(
        description="True when the job has ended and this page holds the log's last line"
    )
