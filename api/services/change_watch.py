"""One database poll for every open event stream of this API process.

Each stream used to poll the database itself (three queries every half second: 200 open
streams were 1,200 queries a second, more than two cores can serve beside the API).
Now a stream registers its experiment here and sleeps; one task polls a cheap mark of
every watched experiment — its status and the numbers of its newest epoch and task rows —
in one query (per `store.updates.CHUNK` ids) every `poll_s` seconds, and wakes the streams
whose mark changed; only they read their new rows.

No change is missed: a stream registers *before* its first read, and every mark the
poller sees after that which differs from the last one wakes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from store import updates
from store.errors import error_reason

log = logging.getLogger("ewc.api")

_GONE = ("deleted",)
#: A store function: {id: mark} of those of the ids that exist.
MarkReader = Callable[[Session, Sequence[int]], dict[int, tuple[Any, ...]]]


def marks(
    factory: sessionmaker[Session], ids: list[int], read: MarkReader = updates.marks
) -> dict[int, tuple[Any, ...]]:
    """{id: (status, newest epoch, newest task)} of the experiments that exist (or the mark
    `read` gives: a log stream's is its newest line, `store.logs.marks`)."""
    with factory() as session:
        return read(session, ids)


class ChangeWatch:
    """Wakes the streams of an experiment when its mark changes (see the module)."""

    def __init__(
        self, factory: sessionmaker[Session], poll_s: float, read: MarkReader = updates.marks
    ):
        self.factory = factory
        self.poll_s = poll_s
        self.read = read
        self._watchers: dict[int, set[asyncio.Event]] = {}
        self._seen: dict[int, tuple[Any, ...]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def watched(self) -> int:
        """Streams registered now."""
        return sum(len(s) for s in self._watchers.values())

    def watch(self, experiment_id: int) -> asyncio.Event:
        """Register a stream; the event is set whenever the experiment may have news."""
        event = asyncio.Event()
        self._watchers.setdefault(experiment_id, set()).add(event)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        return event

    def unwatch(self, experiment_id: int, event: asyncio.Event) -> None:
        """Forget a stream (it ended or its client left)."""
        events = self._watchers.get(experiment_id)
        if events is None:
            return
        events.discard(event)
        if not events:
            del self._watchers[experiment_id]
            self._seen.pop(experiment_id, None)

    async def _run(self) -> None:
        while self._watchers:
            await asyncio.sleep(self.poll_s)
            ids = list(self._watchers)
            if not ids:
                break
            try:
                found = await run_in_threadpool(marks, self.factory, ids, self.read)
            except SQLAlchemyError as exc:  # the streams wait; their keep-alives go on
                log.warning("event=stream_poll_failed error=%r", error_reason(exc))
                continue
            for eid in ids:
                mark = found.get(eid, _GONE)
                if self._seen.get(eid) != mark:
                    self._seen[eid] = mark
                    for event in self._watchers.get(eid, ()):
                        event.set()
