"""Managing runs after the fact, for the v1 routes (`api.routes.manage`) and the dashboard
(`api.routes.dashboard.manage`) alike: re-run, edit, archive, restore, purge, cancel a sweep.

Who may: anyone may re-run a run they can read (the new run is theirs); its owner or an
admin may edit, archive, restore it or cancel a sweep; only an admin may purge (403
otherwise). A re-run is a submission: the same limits, per-user cap and wake-up.
"""

from __future__ import annotations

import copy
import difflib
import logging
from typing import Any

from fastapi import HTTPException, status
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api import parsing, submission
from api.errors import SpecProblems
from api.services import runs
from api.services.artifacts import artifact_store
from common.schemas_manage import ExperimentEdit, RerunIn
from common.settings import Settings
from common.storage import StorageError, StorageUnavailable
from continual_core.spec import ExperimentSpec, validation_problems
from store import experiments as store_experiments
from store import manage as store_manage
from store import sweeps as store_sweeps
from store.models import Experiment, User
from store.sweeps import GridError
from store.vocabulary import ACTIVE

log = logging.getLogger("ewc.api")

#: What a re-run's name ends with (unless the overrides name it).
RERUN_SUFFIX = " (re-run)"


def _check_owner(user: User, owner_id: int, owner: str, what: str, verb: str) -> None:
    if owner_id != user.id and not user.is_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{what} belongs to {owner}; only its owner or an admin may {verb} it",
        )


def owned_experiment(session: Session, user: User, experiment_id: int, verb: str) -> Experiment:
    """The experiment, if `user` owns it or is an admin (403 otherwise, 404 unknown)."""
    experiment = store_experiments.get_experiment(session, experiment_id)
    _check_owner(user, experiment.owner_id, experiment.owner.name,
                 f"experiment {experiment_id}", verb)  # fmt: skip
    return experiment


def rerun_name(experiment: Experiment) -> str:
    """The original's name + " (re-run)" ("re-run of #12" for an unnamed run), ≤ 200."""
    base = experiment.name or f"#{experiment.id}"
    name = base + RERUN_SUFFIX if experiment.name else f"re-run of {base}"
    return name if len(name) <= 200 else base[: 200 - len(RERUN_SUFFIX)] + RERUN_SUFFIX


def _unknown_path(path: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(path, sorted(known), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"not a spec path; {hint}write a dotted spec field, e.g. ewc.lambda or seed"


def rerun_spec(experiment: Experiment, overrides: dict[str, Any]) -> ExperimentSpec:
    """The stored spec, named for a re-run, with the original's current tags, and each
    dotted override applied; validated as a whole. SpecProblems (422) names an override
    as `overrides.<path>`, any other problem as `spec.<field>`."""
    problem = parsing.json_text_problem(overrides)
    if problem:
        raise SpecProblems([("overrides", problem)])
    raw = copy.deepcopy(experiment.spec or {})
    raw["name"], raw["tags"] = rerun_name(experiment), experiment.tag_names
    known = runs.param_paths()
    unknown = [(f"overrides.{p}", _unknown_path(p, known)) for p in overrides if p not in known]
    if unknown:
        raise SpecProblems(unknown)
    for path, value in overrides.items():
        try:
            store_sweeps.set_path(raw, path, value)
        except GridError as exc:
            raise SpecProblems([(f"overrides.{path}", str(exc).removeprefix("grid "))]) from None
    try:
        return ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for where, message in validation_problems(exc):
            key = next((k for k in overrides if where == k or where.startswith(k + ".")), None)
            if key is not None:
                problems.append((f"overrides.{where}", f"{overrides[key]!r}: {message}"))
            else:
                problems.append((f"spec.{where}", message))
        raise SpecProblems(problems) from None


def rerun(
    session: Session, settings: Settings, user: User, experiment_id: int, body: RerunIn | None
) -> Experiment:
    """A new queued run of the experiment's spec (with overrides), owned by `user`, in the
    original's project unless another is given; `rerun_of` names the original. Not
    committed, no wake-up yet (`api.submission.wake`)."""
    original = store_experiments.get_experiment(session, experiment_id)
    body = body or RerunIn()
    spec = rerun_spec(original, body.overrides)
    owner = session.merge(user)  # the original's owner may be this user, loaded already
    created = submission.create_experiment(
        session, settings, owner, spec, project=body.project or original.project,
        rerun_of=original.id,
    )  # fmt: skip
    log.info("event=experiment_rerun experiment_id=%s rerun_of=%s by=%s",
             created.id, original.id, user.name)  # fmt: skip
    return created


def edit(session: Session, user: User, experiment_id: int, body: ExperimentEdit) -> Experiment:
    """Apply the fields `body` sets (owner or admin)."""
    owned_experiment(session, user, experiment_id, "edit")
    given = body.model_fields_set
    if "project" in given and body.project is None:
        raise SpecProblems([("project", "a run always has a project; give its name")])
    if "tags" in given and body.tags is None:
        raise SpecProblems([("tags", "give a list of tags ([] for none)")])
    changes = {k: getattr(body, k) for k in ("name", "notes", "project", "tags") if k in given}
    experiment = store_manage.edit_experiment(session, experiment_id, **changes)
    log.info("event=experiment_edited experiment_id=%s by=%s fields=%s",
             experiment_id, user.name, ",".join(sorted(changes)))  # fmt: skip
    return experiment


def archive(session: Session, user: User, experiment_id: int) -> Experiment:
    """Archive a finished experiment (owner or admin; 409 for a queued or running one)."""
    owned_experiment(session, user, experiment_id, "archive")
    experiment = store_manage.archive(session, experiment_id)
    log.info("event=experiment_archived experiment_id=%s by=%s", experiment_id, user.name)
    return experiment


def restore(session: Session, user: User, experiment_id: int) -> Experiment:
    """Bring an archived experiment back into listings (owner or admin)."""
    owned_experiment(session, user, experiment_id, "restore")
    experiment = store_manage.restore(session, experiment_id)
    log.info("event=experiment_restored experiment_id=%s by=%s", experiment_id, user.name)
    return experiment


def purge(session: Session, settings: Settings, user: User, experiment_id: int) -> int:
    """Delete a finished experiment for good, its artifacts first (admin only); returns how
    many objects left the artifact store. 409 for a queued or running job; 503 (nothing
    deleted from the database) when the store cannot delete now."""
    if not user.is_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "only an admin may purge an experiment; archive it instead (DELETE "
            f"/v1/experiments/{experiment_id}, ewc archive {experiment_id})",
        )
    experiment = store_experiments.get_experiment(session, experiment_id)
    if experiment.status in ACTIVE:
        raise store_manage.ExperimentActive(experiment_id, experiment.status.value, "purge")
    store = artifact_store(settings)
    try:
        removed = store.delete_prefix(f"experiments/{int(experiment_id)}")
    except StorageError as exc:
        retry = isinstance(exc, StorageUnavailable)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the artifact store cannot delete experiment {experiment_id}'s files now "
            f"({exc}); nothing was purged{', retry shortly' if retry else ''}",
            headers={"Retry-After": "5"} if retry else None,
        ) from None
    store_manage.purge(session, experiment_id)
    log.info("event=experiment_purged experiment_id=%s by=%s artifacts=%s",
             experiment_id, user.name, removed)  # fmt: skip
    return removed


def cancel_sweep(session: Session, user: User, sweep_id: int) -> store_manage.SweepCancel:
    """Cancel every queued or running point of a sweep (owner or admin)."""
    owner_id, owner = store_manage.sweep_owner(session, sweep_id)
    _check_owner(user, owner_id, owner, f"sweep {sweep_id}", "cancel")
    result = store_manage.cancel_sweep(session, sweep_id)
    log.info("event=sweep_cancel_requested sweep_id=%s by=%s cancelled=%s stopping=%s",
             sweep_id, user.name, len(result.cancelled), len(result.stopping))  # fmt: skip
    return result
