"""`Client`: every v1 call as a typed method (httpx; answers are `common.schemas` models).

Experiments: `submit`, `get`, `wait` (follows the event stream, polls when there is none),
`events`, `runs` (every page; `filter=` and `order_by=` as in docs/filters.md), `page`
(one), `rows` and `table` (many runs as flat rows; a pandas DataFrame), `metrics`, `cancel`. Files: `artifacts`,
`download`, `plot`, `export`, `export_csv`, `compare`, `compare_plot`. Sweeps: `submit_sweep`, `sweep`,
`sweeps` (every page), `wait_sweep`. And `queues`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx
from pydantic import BaseModel

from client.datasets import DatasetsMixin
from client.errors import ApiError, ClientError, Unreachable
from client.events import Event, StreamUnavailable, stream_events
from client.logs import LogsMixin
from client.manage import ManageMixin
from client.webhooks import WebhooksMixin
from common.schemas import (
    ArtifactList,
    Comparison,
    ExperimentExport,
    ExperimentOut,
    ExperimentPage,
    Metrics,
    Queues,
    SweepCreated,
    SweepList,
    SweepOut,
    SweepSummary,
    TableRow,
)
from continual_core.spec import ExperimentSpec
from store.vocabulary import FINISHED_STATUSES

if TYPE_CHECKING:
    import pandas

M = TypeVar("M", bound=BaseModel)
FINISHED = frozenset(FINISHED_STATUSES)
#: Most items one listing page holds (the server's cap).
MAX_PAGE = 200
#: Most rows one table page holds (the server's cap).
MAX_TABLE_ROWS = 1000


class Client(DatasetsMixin, LogsMixin, ManageMixin, WebhooksMixin):
    """A client of one EWC Server for one token; use it as a context manager (or `close`)."""

    def __init__(self, url: str, token: str, timeout: float = 30.0):
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # The one way a request is made ------------------------------------------------------

    def raised(self, error: ClientError) -> Exception:
        """The exception to raise for `error` (a command line prints it instead)."""
        return error

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer to one request; `ApiError` for a status of 400 or more."""
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self.raised(Unreachable(str(self.http.base_url), exc)) from None
        if resp.status_code >= 400:
            raise self.raised(ApiError.of(resp))
        return resp

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer to one request (None when empty)."""
        resp = self.send(method, path, **kwargs)
        return resp.json() if resp.content else None

    def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return model.model_validate(self.request(method, path, **kwargs))

    # Experiments -----------------------------------------------------------------------

    def submit(self, spec: ExperimentSpec | dict[str, Any], **fields: Any) -> ExperimentOut:
        """Queue an experiment; `fields` (name, tags, priority, device, ...) join the spec,
        `project=` files it there (default: your user name). The server checks it
        (`ApiError` 422 with each problem)."""
        body = spec.to_json_dict() if isinstance(spec, ExperimentSpec) else dict(spec)
        params = _query(project=fields.pop("project", None))
        body.update(fields)
        return self._model(ExperimentOut, "POST", "/v1/experiments", json=body, params=params)

    def get(self, experiment_id: int) -> ExperimentOut:
        return self._model(ExperimentOut, "GET", f"/v1/experiments/{experiment_id}")

    def metrics(self, experiment_id: int) -> Metrics:
        """Every epoch row and the accuracy matrix (partial while the job runs)."""
        return self._model(Metrics, "GET", f"/v1/experiments/{experiment_id}/metrics")

    def cancel(self, experiment_id: int) -> ExperimentOut:
        return self._model(ExperimentOut, "POST", f"/v1/experiments/{experiment_id}/cancel")

    def page(
        self, *, filter: str | None = None, order_by: str | None = None,
        status: str | None = None, tag: str | None = None, owner: str | None = None,
        limit: int = 50, cursor: str | None = None, project: str | None = None,
        archived: bool = False,
    ) -> ExperimentPage:  # fmt: skip
        """One page of experiments matching `filter`, sorted by `order_by` (the grammar of
        docs/filters.md; default newest first); `next_cursor` continues it. Archived runs
        only with `archived=True`."""
        params = _query(filter=filter, order_by=order_by, status=status, tag=tag, owner=owner,
                        limit=limit, cursor=cursor, project=project,
                        archived="true" if archived else None)  # fmt: skip
        return self._model(ExperimentPage, "GET", "/v1/experiments", params=params)

    def runs(
        self, *, filter: str | None = None, order_by: str | None = None,
        status: str | None = None, tag: str | None = None, owner: str | None = None,
        page_size: int = MAX_PAGE, project: str | None = None, archived: bool = False,
    ) -> Iterator[ExperimentOut]:  # fmt: skip
        """Every experiment matching `filter` (e.g. "params.ewc.lambda > 10 and status =
        'succeeded'"), in `order_by` order ("metrics.average_accuracy desc"; default newest
        first), fetching page after page as needed. A bad filter is an `ApiError` 422 whose
        problem names the token and its position."""
        cursor = None
        while True:
            page = self.page(filter=filter, order_by=order_by, status=status, tag=tag,
                             owner=owner, limit=page_size, cursor=cursor, project=project,
                             archived=archived)  # fmt: skip
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def rows(
        self, *, filter: str | None = None, order_by: str | None = None,
        status: str | None = None, tag: str | None = None, owner: str | None = None,
        page_size: int = MAX_TABLE_ROWS,
    ) -> Iterator[TableRow]:  # fmt: skip
        """Every matching run as a flat row of `GET /v1/experiments/table` (`id`, `name`,
        `owner`, `status`, `sweep_id`, `tags`, times, then `params.<path>` and
        `metrics.<key>` as extra fields: `row.model_dump()` has them all), page after page."""
        cursor = None
        while True:
            params = _query(filter=filter, order_by=order_by, status=status, tag=tag,
                            owner=owner, limit=page_size, cursor=cursor)  # fmt: skip
            resp = self.send("GET", "/v1/experiments/table", params=params)
            yield from (TableRow.model_validate(row) for row in resp.json())
            cursor = resp.headers.get("X-Next-Cursor")
            if not cursor:
                return

    def table(
        self, *, filter: str | None = None, order_by: str | None = None,
        status: str | None = None, tag: str | None = None, owner: str | None = None,
        page_size: int = MAX_TABLE_ROWS,
    ) -> pandas.DataFrame:  # fmt: skip
        """Every matching run as one row of a pandas DataFrame (the columns of `rows`, in
        the server's order; times as UTC datetimes), e.g.
        `ewc.table(filter="sweep = 12", order_by="metrics.bwt desc")`. Needs pandas:
        `pip install 'ewc-server[pandas]'`."""
        try:
            import pandas
        except ImportError as exc:
            raise ImportError(
                "Client.table() needs pandas, an optional extra: pip install 'ewc-server[pandas]' "
                "(or pip install pandas); Client.rows() gives the same rows without it"
            ) from exc
        rows = [row.model_dump(mode="json") for row in self.rows(filter=filter, order_by=order_by,
                status=status, tag=tag, owner=owner, page_size=page_size)]  # fmt: skip
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        frame = pandas.DataFrame(rows, columns=list(columns or TableRow.model_fields))
        for column in ("created_at", "started_at", "finished_at"):
            frame[column] = pandas.to_datetime(frame[column], utc=True)
        return frame

    def events(self, experiment_id: int, last_event_id: str | None = None) -> Iterator[Event]:
        """The experiment's live events (`status`, `epoch`, `task`) until `end`.

        Raises `StreamUnavailable` when the stream cannot be used (`wait` then polls)."""
        return stream_events(self.http, experiment_id, last_event_id)

    def wait(
        self, experiment_id: int, *, on_event: Callable[[Event], None] | None = None,
        poll_s: float = 1.0, timeout: float | None = None,
    ) -> ExperimentOut:  # fmt: skip
        """Follow the experiment until it finishes; its final state. `on_event` sees every
        event of the stream; without a stream, the experiment is polled every `poll_s`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for event in self.events(experiment_id):
                if on_event is not None:
                    on_event(event)
                if deadline is not None and time.monotonic() > deadline:
                    break
        except StreamUnavailable:
            pass
        while True:
            exp = self.get(experiment_id)
            if exp.status.value in FINISHED:
                return exp
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"experiment {experiment_id} still {exp.status.value}")
            time.sleep(poll_s)

    # Files and reports -----------------------------------------------------------------

    def artifacts(self, experiment_id: int) -> ArtifactList:
        return self._model(ArtifactList, "GET", f"/v1/experiments/{experiment_id}/artifacts")

    def download(self, experiment_id: int, path: str, dest: str | Path) -> Path:
        """Save artifact `path` (`model.keras`, `task-1.zip`, ...) to `dest` (a folder: under
        the artifact's name); the file written."""
        target = Path(dest)
        if target.is_dir():
            target = target / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        url = f"/v1/experiments/{experiment_id}/artifacts/{path}"
        try:
            with self.http.stream("GET", url) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise self.raised(ApiError.of(resp))
                with target.open("wb") as out:
                    for chunk in resp.iter_bytes():
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise self.raised(Unreachable(str(self.http.base_url), exc)) from None
        return target

    def plot(self, experiment_id: int, kind: str = "curves") -> bytes:
        """A plot's PNG: `curves` or `accuracy-matrix` (409 before there is anything)."""
        return self.send("GET", f"/v1/experiments/{experiment_id}/plots/{kind}.png").content

    def export(self, experiment_id: int) -> ExperimentExport:
        return self._model(ExperimentExport, "GET", f"/v1/experiments/{experiment_id}/export.json")

    def export_csv(self, experiment_id: int) -> str:
        return self.send("GET", f"/v1/experiments/{experiment_id}/export.csv").text

    def compare(self, experiment_ids: list[int]) -> Comparison:
        ids = ",".join(map(str, experiment_ids))
        return self._model(Comparison, "GET", "/v1/experiments/compare", params={"ids": ids})

    def compare_plot(self, experiment_ids: list[int], kind: str = "accuracy") -> bytes:
        """Several runs in one PNG: `accuracy`, `average`, `loss`, or `diff` (two ids: the
        second's accuracy matrix minus the first's); 409 while none has anything to draw."""
        ids = ",".join(map(str, experiment_ids))
        return self.send(
            "GET", "/v1/experiments/compare/plot.png", params={"ids": ids, "kind": kind}
        ).content

    # Sweeps ----------------------------------------------------------------------------

    def submit_sweep(
        self, base: ExperimentSpec | dict[str, Any], grid: dict[str, list[Any]],
        name: str | None = None,
    ) -> SweepCreated:  # fmt: skip
        """One queued experiment per grid point (dotted spec paths → values)."""
        body = base.to_json_dict() if isinstance(base, ExperimentSpec) else dict(base)
        return self._model(
            SweepCreated, "POST", "/v1/sweeps", json={"base": body, "grid": grid, "name": name}
        )

    def sweep(self, sweep_id: int) -> SweepOut:
        """Per grid point: mean ± std over seeds, counts by status, the best point."""
        return self._model(SweepOut, "GET", f"/v1/sweeps/{sweep_id}")

    def sweeps(self, page_size: int = MAX_PAGE) -> Iterator[SweepSummary]:
        """Every sweep, newest first, page after page."""
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": page_size, **({"cursor": cursor} if cursor else {})}
            page = self._model(SweepList, "GET", "/v1/sweeps", params=params)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def wait_sweep(
        self, sweep_id: int, *, poll_s: float = 2.0,
        on_update: Callable[[SweepOut], None] | None = None,
    ) -> SweepOut:  # fmt: skip
        """Poll the sweep until every run has finished; its final document."""
        while True:
            doc = self.sweep(sweep_id)
            if on_update is not None:
                on_update(doc)
            if sum(doc.counts.get(k, 0) for k in FINISHED) >= sum(doc.counts.values()):
                return doc
            time.sleep(poll_s)

    def queues(self) -> Queues:
        return self._model(Queues, "GET", "/v1/queues")


def _query(**params: Any) -> dict[str, Any]:
    """The query parameters that are set (None means "not given")."""
    return {k: v for k, v in params.items() if v is not None}
