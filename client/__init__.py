"""The Python client of EWC Server: script experiments from a notebook or a program.

    from client import Client

    with Client("http://127.0.0.1:8000", token) as ewc:
        exp = ewc.submit({"dataset": "digits", "dataset_update": "permute", "splits": 2})
        done = ewc.wait(exp.id)               # follows the event stream
        ewc.metrics(done.id).accuracy_matrix

Answers are the API's own pydantic models (`common.schemas`); errors are `ApiError` (the
HTTP status, the server's sentence and, for a 422, every problem) or `Unreachable`. Needs
httpx and pydantic only: no FastAPI, SQLAlchemy or TensorFlow (see docs/architecture.md).
"""

from __future__ import annotations

from client.errors import ApiError, ClientError, Unreachable
from client.events import Event, iter_sse
from client.http import Client

__all__ = ["ApiError", "Client", "ClientError", "Event", "Unreachable", "iter_sse"]
