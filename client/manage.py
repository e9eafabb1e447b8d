"""Managing runs: `rerun`, `edit`, `archive`, `restore`, `purge`, `cancel_sweep`.

Mixed into `client.http.Client`: methods here call `self.send`, `self.request` and
`self._model` as the rest of the client does.

    ewc.rerun(12, overrides={"ewc.lambda": 10})     # a new run, rerun_of=12
    ewc.edit(12, notes="lr too high", tags=["baseline"])
    ewc.archive(12); ewc.restore(12)                # hidden from listings, and back
    ewc.purge(12)                                   # admin: the row and its artifacts
    ewc.cancel_sweep(3)                             # every queued or running point
"""

from __future__ import annotations

from typing import Any

from common.schemas import ExperimentOut
from common.schemas_manage import Purged, SweepCancelled

#: `edit`'s default: leave the field as it is (None clears a name or notes).
UNSET: Any = object()


class ManageMixin:
    """The client's manage calls."""

    _model: Any  # client.http.Client._model(model, method, path, **kwargs) -> model

    def rerun(
        self, experiment_id: int, overrides: dict[str, Any] | None = None,
        project: str | None = None,
    ) -> ExperimentOut:  # fmt: skip
        """Queue the experiment again with `overrides` (dotted spec paths → values, e.g.
        {"ewc.lambda": 10}); the new run records `rerun_of`. A bad override is an
        `ApiError` 422 naming `overrides.<path>`."""
        body: dict[str, Any] = {"overrides": overrides or {}}
        if project is not None:
            body["project"] = project
        return self._model(ExperimentOut, "POST", f"/v1/experiments/{experiment_id}/rerun",
                           json=body)  # fmt: skip

    def edit(
        self, experiment_id: int, *, name: str | None = UNSET, tags: list[str] | None = None,
        notes: str | None = UNSET, project: str | None = None,
    ) -> ExperimentOut:  # fmt: skip
        """Change the name, tags (the whole list), notes or project (owner or admin);
        what is not given stays, `name=None` / `notes=None` clear them."""
        body: dict[str, Any] = {}
        if name is not UNSET:
            body["name"] = name
        if notes is not UNSET:
            body["notes"] = notes
        if tags is not None:
            body["tags"] = list(tags)
        if project is not None:
            body["project"] = project
        return self._model(ExperimentOut, "PATCH", f"/v1/experiments/{experiment_id}",
                           json=body)  # fmt: skip

    def archive(self, experiment_id: int) -> ExperimentOut:
        """Hide a finished experiment from listings (`ApiError` 409 while it is queued or
        running: cancel it first)."""
        return self._model(ExperimentOut, "DELETE", f"/v1/experiments/{experiment_id}")

    def restore(self, experiment_id: int) -> ExperimentOut:
        """Show an archived experiment in listings again."""
        return self._model(ExperimentOut, "POST", f"/v1/experiments/{experiment_id}/restore")

    def purge(self, experiment_id: int) -> Purged:
        """Delete a finished experiment and its artifacts for good (admin only)."""
        return self._model(Purged, "POST", f"/v1/experiments/{experiment_id}/purge")

    def cancel_sweep(self, sweep_id: int) -> SweepCancelled:
        """Cancel every queued or running point of a sweep (owner or admin)."""
        return self._model(SweepCancelled, "POST", f"/v1/sweeps/{sweep_id}/cancel")
