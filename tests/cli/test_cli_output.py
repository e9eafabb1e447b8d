"""`-o table|json|csv` on the read commands, against a real API process: the same runs in
each format (json the whole document, csv one line a row with a header), `--json` as the old
alias, `ewc list --all` walking every page and `--cursor` continuing one; `ewc sweep show`
with its best point's reason; and shell completion."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cli.main import app as ewc_app
from cli.output import emit, rows_table, to_csv
from store.db import unit_of_work
from store.models import JobStatus
from tests.fixtures import cli_server
from tests.fixtures.cli_server import as_admin, invoke, runner
from tests.fixtures.dashboard import ADMIN_TOKEN, sample_result

server, admin, config_home = cli_server.server, cli_server.admin, cli_server.config_home

#: The tests that start a server process: SQLite only (the TestClient tests cover PostgreSQL).
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
EWC = Path(sys.executable).with_name("ewc")


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_and_json_of_rows_and_of_one_object(capsys):
    rows = [{"id": 1, "name": "a,b", "tags": ["x", "y"], "gone": None, "ok": True}]
    assert to_csv(rows) == 'id,name,tags,gone,ok\n1,"a,b","[""x"",""y""]",,true\n'
    assert to_csv({"items": rows}, columns=["name", "id"]) == 'name,id\n"a,b",1\n'
    assert to_csv({"id": 2}) == "id\n2\n"  # one object is one row
    emit({"items": rows, "next_cursor": "c"}, "json")
    assert json.loads(capsys.readouterr().out) == {"items": rows, "next_cursor": "c"}
    emit(rows, None, as_json=True)  # --json is -o json
    assert json.loads(capsys.readouterr().out) == rows
    emit(rows, "csv", as_json=True)  # -o wins over --json
    assert capsys.readouterr().out.startswith("id,name")
    assert rows_table({"id": 3, "name": "n"}).row_count == 2  # one object: field/value rows


@SQLITE
def test_list_status_and_results_in_every_format_and_every_page(
    server, admin, make_experiment, config_home
):
    done = make_experiment(admin, result=sample_result(2), name="done")
    queued = make_experiment(admin, status=JobStatus.queued, name="waiting")
    env = as_admin(server)

    r = invoke("list", "-o", "json", env=env)
    assert r.exit_code == 0, r.output
    page = json.loads(r.stdout)
    assert [e["id"] for e in page["items"]] == [queued, done] and page["next_cursor"] is None
    assert json.loads(invoke("list", "--json", env=env).stdout) == page  # the old flag

    rows = csv_rows(invoke("list", "--output", "csv", env=env).stdout)
    assert [r["id"] for r in rows] == [str(queued), str(done)]
    assert rows[1]["status"] == "succeeded" and rows[1]["average_accuracy"] == "0.88"
    assert rows[0]["average_accuracy"] == "" and rows[1]["name"] == "done"

    table = invoke("list", "-o", "table", env=env)
    assert table.exit_code == 0 and "waiting" in table.stdout and "88.0" in table.stdout

    status = csv_rows(invoke("status", str(done), "-o", "csv", env=env).stdout)
    assert len(status) == 1 and status[0]["id"] == str(done) and status[0]["bwt"] == "-0.04"
    assert json.loads(invoke("status", str(done), "-o", "json", env=env).stdout)["name"] == "done"

    epochs = csv_rows(invoke("results", str(done), "-o", "csv", env=env).stdout)
    assert len(epochs) == 4 and epochs[0]["task"] == "1" and json.loads(epochs[0]["val_accuracy"])
    metrics = json.loads(invoke("results", str(done), "-o", "json", env=env).stdout)
    assert len(metrics["epochs"]) == 4 and metrics["accuracy_matrix"]
    assert invoke("results", str(done), "-o", "table", env=env).exit_code == 0

    # --all walks every page; --cursor continues one
    newest = [*reversed([make_experiment(admin, name=f"run{i}") for i in range(3)]), queued, done]
    first = invoke("list", "--limit", "2", env=env)
    assert first.exit_code == 0, first.output
    cursor = first.stderr.split("--cursor ")[1].split()[0]  # "more: --cursor C (or --all)"
    second = json.loads(invoke("list", "--limit", "2", "--cursor", cursor, "-o", "json", env=env).stdout)
    assert [e["id"] for e in second["items"]] == newest[2:4] and second["next_cursor"]

    every = csv_rows(invoke("list", "--all", "--limit", "2", "-o", "csv", env=env).stdout)
    assert [int(r["id"]) for r in every] == newest
    whole = json.loads(invoke("list", "--all", "--json", env=env).stdout)
    assert len(whole["items"]) == 5 and whole["next_cursor"] is None
    r = invoke("list", "--all", "--cursor", cursor, env=env)
    assert r.exit_code == 1 and "--all" in r.stderr


@SQLITE
def test_sweep_show_sweeps_list_queues_and_artifacts(server, admin, session_factory, config_home):
    from sqlalchemy import select, update

    from store.models import Experiment

    env = as_admin(server)
    body = {"base": {"dataset": "digits", "dataset_update": "permute", "splits": 2, "epochs": 2},
            "grid": {"ewc.lambda": [1, 100], "seed": [0, 1, 2]}, "name": "lam"}  # fmt: skip
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as h:
        sweep_id = h.post("/v1/sweeps", json=body).json()["id"]
    with unit_of_work(session_factory) as s:  # λ=1: 70-72 %; λ=100: 90-91 %: a clear best
        ids = s.scalars(select(Experiment.id).where(Experiment.sweep_id == sweep_id)
                        .order_by(Experiment.id)).all()  # fmt: skip
        for exp_id, avg in zip(ids, [0.70, 0.72, 0.71, 0.90, 0.91, 0.90], strict=True):
            s.execute(update(Experiment).where(Experiment.id == exp_id).values(
                status=JobStatus.succeeded,
                summary={"average_accuracy": avg, "bwt": -0.05, "forgetting": 0.05}))

    shown = invoke("sweep", "show", str(sweep_id), env=env)
    assert shown.exit_code == 0, shown.output
    assert "best: ewc.lambda=100" in shown.stdout and "more than the noise" in shown.stdout
    doc = json.loads(invoke("sweeps", "show", str(sweep_id), "-o", "json", env=env).stdout)
    assert doc["best"] == {"ewc.lambda": 100} and doc["best_test"]["decided"]
    points = csv_rows(invoke("sweep", "show", str(sweep_id), "-o", "csv", env=env).stdout)
    assert [p["ewc.lambda"] for p in points] == ["1.0", "100.0"]  # as the stored spec has them
    assert [p["best"] for p in points] == ["false", "true"] and points[1]["average_accuracy_n"] == "3"

    listed = csv_rows(invoke("sweeps", "list", "-o", "csv", env=env).stdout)
    assert listed[0]["id"] == str(sweep_id) and listed[0]["succeeded"] == "6"
    assert listed[0]["grid"] == "ewc.lambda,seed"

    queues = json.loads(invoke("queues", "-o", "json", env=env).stdout)
    assert set(queues["queues"]) == {"cpu", "gpu"} and queues["status"]["succeeded"] == 6
    assert [r["queue"] for r in csv_rows(invoke("queues", "-o", "csv", env=env).stdout)] == ["cpu", "gpu"]

    artifacts = json.loads(invoke("artifacts", "list", str(ids[0]), "-o", "json", env=env).stdout)
    assert artifacts == {"experiment_id": ids[0], "items": []}
    assert invoke("artifacts", "list", "99999", env=env).exit_code == 1


def test_shell_completion():
    env = {k: v for k, v in os.environ.items() if not k.startswith("_EWC")}
    # From bash, as a user runs it: Typer detects the shell from the process tree (the
    # `; exit` keeps bash above ewc: a lone command would be exec'd in bash's place).
    script = subprocess.run(["bash", "-c", f"'{EWC}' --show-completion; exit $?"],
                            capture_output=True, text=True, env=env, timeout=120,
                            check=False)  # fmt: skip
    assert script.returncode == 0 and "_ewc_completion" in script.stdout
    assert "complete " in script.stdout  # the line bash runs to register it

    def complete(words: str, cword: int) -> set[str]:  # what the installed script asks for
        r = runner.invoke(ewc_app, [], prog_name="ewc", env={
            "_EWC_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)})
        assert r.exit_code == 0, r.output
        return set(r.stdout.split())

    assert complete("ewc log", 1) >= {"login", "logout", "logs"}
    assert complete("ewc sweeps ", 2) == {"list", "show"}
    assert {"--output", "--all", "--cursor"} <= complete("ewc list --", 2)
