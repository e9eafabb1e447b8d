"""`user:<name>` in a spec, resolved at submission (`api.submission`): the upload's sha256,
shape and classes go into the spec's `user_dataset`, and the spec is checked again on that
shape (the model must take it, splits must fit its classes).
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.errors import SpecProblems
from continual_core.spec import ExperimentSpec, validation_problems
from continual_core.user_datasets import as_input_shape, is_user, user_name
from store import datasets as store_datasets


def resolve(session: Session, spec: ExperimentSpec) -> ExperimentSpec:
    """`spec` with `user:<name>` resolved from the upload (its sha256, shape, classes), and
    checked again on that shape; other specs unchanged. 422 naming `dataset` when there is
    no such upload, or the field the shape breaks (`model`, `splits`)."""
    if not is_user(spec.dataset):
        return spec
    name = user_name(str(spec.dataset))
    row = store_datasets.find_dataset(session, name)
    if row is None:
        raise SpecProblems([("dataset", (f"no uploaded dataset named {name!r}; upload one "
                                        f"(ewc datasets upload FILE.npz --name {name}) or "
                                        "pick one of GET /v1/datasets"))])  # fmt: skip
    info = {"checksum": row.checksum, "num_classes": row.num_classes,
            "input_shape": list(as_input_shape(tuple(row.input_shape)))}  # fmt: skip
    try:
        return ExperimentSpec.model_validate({**spec.to_json_dict(), "user_dataset": info})
    except ValidationError as exc:
        raise SpecProblems(validation_problems(exc)) from None
