"""Uploaded datasets' rows (`store.records.Dataset`): create, find, list, delete.

The file itself lives in the artifact store under `storage_key(checksum)`
(`datasets/<sha256>.npz`): content-addressed, so a worker on any host finds it from the
checksum the resolved spec carries, and the same file uploaded under two names is stored
once (its object goes when the last row naming it goes: `still_stored`). Functions take a
Session, flush, and never commit.

Every user may *use* every dataset (they are shared by the team); only its owner or an
admin may delete one, and not while a queued or running experiment names it.

A delete and a submission naming the dataset never both succeed: a submission takes the
row `FOR SHARE` (`lock_dataset`) before it resolves the name and keeps it until it commits
its experiment, a delete takes it `FOR UPDATE` (`get_dataset(..., for_delete=True)`)
before it looks for active experiments. On PostgreSQL whichever comes second waits: a
delete then sees the new job (409), a submission finds no dataset (422). SQLite ignores
the locks; there every writer holds the one write lock from `BEGIN IMMEDIATE`
(`store.db`), so the check and the write are one transaction all the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.errors import Conflict, NotFound
from store.models import Experiment, User
from store.records import Dataset
from store.vocabulary import ACTIVE


class DatasetNotFound(NotFound):
    def __init__(self, name: str):
        super().__init__(f"no dataset named {name!r}; GET /v1/datasets (ewc datasets list) "
                         "lists the uploaded ones")  # fmt: skip
        self.name = name


class DatasetExists(Conflict):
    def __init__(self, name: str):
        super().__init__(f"a dataset named {name!r} exists already; pick another name, or "
                         "delete that one first (DELETE /v1/datasets/{name})")  # fmt: skip
        self.name = name


class DatasetInUse(Conflict):
    def __init__(self, name: str, experiment_ids: Sequence[int]):
        shown = ", ".join(str(i) for i in experiment_ids[:10])
        more = f" and {len(experiment_ids) - 10} more" if len(experiment_ids) > 10 else ""
        super().__init__(f"dataset {name!r} is used by queued or running experiments "
                         f"({shown}{more}); cancel them or wait until they end, then delete "
                         "it")  # fmt: skip
        self.name, self.experiment_ids = name, list(experiment_ids)


def storage_key(checksum: str) -> str:
    """The artifact-store key of the dataset file with this sha256."""
    return f"datasets/{checksum}.npz"


def create_dataset(session: Session, owner: User, **fields) -> Dataset:
    """A new dataset row (flushed); raises `DatasetExists` when the name is taken."""
    name = fields["name"]
    if find_dataset(session, name) is not None:
        raise DatasetExists(name)
    row = Dataset(owner_id=owner.id, **fields)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # taken by a concurrent upload between the check and the insert
        raise DatasetExists(name) from None
    return row


def find_dataset(session: Session, name: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.name == name))


def lock_dataset(session: Session, name: str, *, exclusive: bool = False) -> Dataset | None:
    """The dataset called `name` (None when there is none), its row locked until the
    transaction ends: shared by a submission naming it (several may submit at once),
    exclusive for its delete. A no-op lock on SQLite (see the module's docstring)."""
    stmt = select(Dataset).where(Dataset.name == name).with_for_update(read=not exclusive)
    return session.scalar(stmt.execution_options(populate_existing=True))


def get_dataset(session: Session, name: str, *, for_delete: bool = False) -> Dataset:
    """The dataset called `name` (`for_delete`: locked against submissions naming it
    until the transaction ends); raises `DatasetNotFound`."""
    row = lock_dataset(session, name, exclusive=True) if for_delete else find_dataset(session, name)
    if row is None:
        raise DatasetNotFound(name)
    return row


def list_datasets(session: Session) -> list[tuple[Dataset, str]]:
    """Every dataset with its owner's name, by name."""
    rows = session.execute(
        select(Dataset, User.name).join(User, User.id == Dataset.owner_id).order_by(Dataset.name)
    )
    return [(row, owner) for row, owner in rows.tuples()]


def active_users(session: Session, dataset: str) -> list[int]:
    """Ids of the queued or running experiments whose spec's `dataset` is `dataset`
    (`user:<name>`)."""
    rows = session.execute(select(Experiment.id, Experiment.spec).where(
        Experiment.status.in_(ACTIVE)).order_by(Experiment.id))  # fmt: skip
    return [i for i, spec in rows.tuples() if isinstance(spec, dict) and spec.get("dataset") == dataset]


def delete_dataset(session: Session, row: Dataset, dataset: str) -> None:
    """Delete the row (flushed); raises `DatasetInUse` while active experiments name it
    (their spec's `dataset` is `dataset`, `user:<name>`). `row` comes from
    `get_dataset(..., for_delete=True)`, so no submission can add one meanwhile. The caller
    checks who may, and removes the file when `still_stored` says nobody else keeps it."""
    users = active_users(session, dataset)
    if users:
        raise DatasetInUse(row.name, users)
    session.delete(row)
    session.flush()


def still_stored(session: Session, checksum: str) -> bool:
    """Whether some dataset row still names the file with this sha256."""
    return bool(session.scalar(select(func.count()).select_from(Dataset).where(
        Dataset.checksum == checksum)))  # fmt: skip
