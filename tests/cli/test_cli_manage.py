"""`ewc rerun/edit/archive/restore/purge/cancel-sweep`, `ewc submit/list --project` and
`ewc list --archived`, and the Python client's manage calls, against a real API process."""

# ruff: noqa: F811 - pytest fixtures imported by name are the test functions' parameters
from __future__ import annotations

import json

import pytest
import typer

from cli.manage import parse_sets
from client import ApiError, Client
from store.models import JobStatus
from tests.fixtures.cli_server import admin, as_admin, config_home, invoke, server  # noqa: F401
from tests.fixtures.dashboard import ADMIN_TOKEN, sample_result

#: Each test starts a server process: SQLite only here (tests/api covers PostgreSQL).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SPEC = ["--dataset", "digits", "--dataset-update", "permute", "--splits", "2", "--epochs", "2"]


def _ids(result) -> list[int]:
    assert result.exit_code == 0, result.output
    return [e["id"] for e in json.loads(result.stdout)["items"]]


def test_parse_sets_reads_json_values_and_refuses_malformed_entries(database_url):
    assert parse_sets(["ewc.lambda=10", "hidden=[400,400]", "fisher=sampled", "ewc=null"]) == {
        "ewc.lambda": 10, "hidden": [400, 400], "fisher": "sampled", "ewc": None,
    }  # fmt: skip
    for bad in (["ewc.lambda"], ["=3"], ["seed=1", "seed=2"]):
        with pytest.raises(typer.BadParameter):
            parse_sets(bad)


def test_manage_commands_and_the_python_client(
    server,
    admin,
    make_experiment,
    config_home,
    user_token,
):  # one server process for both: starting one is the slow part
    env = as_admin(server)
    r = invoke("submit", *SPEC, "--name", "base", "--tag", "draft", "--project", "vision", env=env)
    assert r.exit_code == 0, r.output
    base = int(r.stdout.strip())
    r = invoke("rerun", str(base), "--set", "seed=3", "--set", "ewc.lambda=10", "--json", env=env)
    assert r.exit_code == 0, r.output
    again = json.loads(r.stdout)
    assert again["rerun_of"] == base and again["name"] == "base (re-run)"
    assert again["spec"]["seed"] == 3 and again["spec"]["ewc"]["lambda"] == 10
    assert again["project"] == "vision" and again["tags"] == ["draft"]
    r = invoke("rerun", str(base), "--set", "epochs=0", env=env)
    assert r.exit_code == 1 and "overrides.epochs" in r.output

    assert _ids(invoke("list", "--project", "vision", "--json", env=env)) == [again["id"], base]
    assert _ids(invoke("list", "--project", "admin", "--json", env=env)) == []

    r = invoke("edit", str(base), "--tag", "baseline", "--untag", "draft", "--notes", "lr high",
               "--name", "", "--json", env=env)  # fmt: skip
    assert r.exit_code == 0, r.output
    edited = json.loads(r.stdout)
    assert (
        edited["tags"] == ["baseline"] and edited["notes"] == "lr high" and edited["name"] is None
    )
    assert invoke("edit", str(base), env=env).exit_code == 1  # nothing to change

    r = invoke("archive", str(base), env=env)
    assert r.exit_code == 1 and "cancel it first" in r.output
    assert invoke("cancel", str(base), env=env).exit_code == 0
    r = invoke("archive", str(base), env=env)
    assert r.exit_code == 0 and "archived" in r.stdout
    assert base not in _ids(invoke("list", "--json", env=env))
    assert base in _ids(invoke("list", "--archived", "--json", env=env))
    assert invoke("restore", str(base), env=env).exit_code == 0
    assert base in _ids(invoke("list", "--json", env=env))

    done = make_experiment(admin, result=sample_result(2), name="old")
    assert invoke("purge", str(done), env=env, input="n\n").exit_code == 1
    r = invoke("purge", str(done), "--yes", env=env)
    assert r.exit_code == 0 and f"#{done}: purged" in r.stdout
    assert invoke("status", str(done), env=env).exit_code == 1

    r = invoke("sweep", *SPEC, "--grid", "seed=0,1", "--json", env=env)
    assert r.exit_code == 0, r.output
    sweep_id = json.loads(r.stdout)["id"]
    r = invoke("cancel-sweep", str(sweep_id), "--json", env=env)
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["cancelled"]) == 2
    _python_client(server, admin, make_experiment, user_token)


@pytest.fixture
def user_token(session_factory):
    from store import users
    from store.db import unit_of_work

    def create(name: str) -> str:
        with unit_of_work(session_factory) as s:
            return users.create_token(s, users.create_user(s, name))[1]

    return create


def _python_client(url: str, admin_id: int, make_experiment, user_token) -> None:
    done = make_experiment(admin_id, result=sample_result(2), name="n", spec={"dataset": "digits"})
    running = make_experiment(admin_id, status=JobStatus.running)
    with Client(url, ADMIN_TOKEN) as ewc:
        again = ewc.rerun(done, {"seed": 5}, project="p")
        assert (again.rerun_of, again.spec["seed"], again.project) == (done, 5, "p")
        assert ewc.edit(done, notes="x", tags=["a"]).notes == "x"
        assert ewc.edit(done, name=None).name is None and ewc.get(done).tags == ["a"]
        assert ewc.archive(done).archived_at is not None
        assert done not in [e.id for e in ewc.runs()]
        assert done in [e.id for e in ewc.runs(archived=True)]
        assert [e.id for e in ewc.runs(project="p")] == [again.id]
        assert ewc.restore(done).archived_at is None
        with pytest.raises(ApiError) as refused:
            ewc.purge(running)
        assert refused.value.status_code == 409
        assert ewc.purge(done).id == done
    with Client(url, user_token("bob")) as bob:
        with pytest.raises(ApiError) as refused:
            bob.purge(running)
        assert refused.value.status_code == 403
        assert bob.submit({"dataset": "digits"}, project="mine").project == "mine"
