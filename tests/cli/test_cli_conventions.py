"""Rules every `ewc` command that talks to the server keeps, checked by walking the Typer
app (so a new command is held to them too):

- it takes `--url`, `--token` and `--profile`, and its `--profile` (and the global
  `ewc --profile NAME`) reaches cli/config.py: an unknown profile ends it with
  "no profile 'nope'" before any request;
- it takes `-o/--output table|json|csv` (cli/output.py), unless it is listed below as one
  that only does something and prints one line;
- shell completion offers the commands and `-o`'s values.

Then a profile pointing at a real API process is used by a command of each of cli/logs.py,
cli/datasets.py, cli/webhooks.py, cli/manage.py and cli/compare.py, and the order
command's --profile > `ewc --profile` > $EWC_PROFILE is checked on it."""

from __future__ import annotations

import csv
import functools
import io
import json

import pytest
import typer.main
from typer.testing import CliRunner

from cli import config
from cli.main import app
from cli.output import Format
from tests.fixtures import cli_server
from tests.fixtures.cli_server import invoke
from tests.fixtures.dashboard import ADMIN_TOKEN

server, admin, config_home = cli_server.server, cli_server.admin, cli_server.config_home

#: Commands that run here (training, serving, the database, files), not over the API.
LOCAL = {
    "run", "worker", "up", "migrate", "api", "logout",
    "users create", "users list", "tokens create", "tokens list", "tokens revoke",
    "artifacts prune", "artifacts init",
}  # fmt: skip
#: Client commands that only change something and print one line (or, login, save a file).
NO_OUTPUT = {"login", "datasets delete", "webhooks remove"}
#: Options the commands need to get as far as their client (ids are given as 1).
EXTRA = {
    "edit": ["--name", "x"],
    "purge": ["--yes"],
    "datasets upload": ["--name", "x"],
    "submit": ["--dataset", "digits"],
    "sweep": ["--grid", "seed=1,2"],
}


@functools.cache
def commands() -> dict[str, object]:
    """{"group sub": click command} of every leaf command of `ewc`."""
    found: dict[str, object] = {}

    def walk(cmd, path: list[str]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = cmd

    walk(typer.main.get_command(app), [])
    return found


def options(cmd) -> dict[str, object]:
    return {opt: p for p in cmd.params for opt in getattr(p, "opts", ()) if opt.startswith("-")}


CLIENT = sorted(set(commands()) - LOCAL)


def test_the_command_lists_are_current():
    every = set(commands())
    assert LOCAL <= every and NO_OUTPUT <= every and set(EXTRA) <= every
    for name in ("logs", "datasets list", "webhooks list", "rerun", "compare", "sweeps show"):
        assert name in CLIENT


@pytest.mark.parametrize("name", CLIENT)
def test_every_client_command_takes_url_token_profile_and_output(name):
    opts = options(commands()[name])
    assert {"--url", "--token", "--profile"} <= set(opts), name
    if name in NO_OUTPUT:
        return
    assert "--output" in opts and "-o" in opts, f"ewc {name} has no -o/--output"
    assert opts["--output"].type_descriptor.annotation is Format  # cli/output.py's option
    if "--json" in opts:  # kept as an alias of -o json
        assert opts["--json"].is_flag


@pytest.mark.parametrize("name", [n for n in CLIENT if n != "login"])
def test_every_client_command_resolves_its_profile(name, config_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    (tmp_path / "1").write_bytes(b"")  # `ewc datasets upload 1` finds its file
    params = commands()[name].params
    required = [p for p in params if p.param_type_name == "argument" and p.required]
    ids = [v for p in required for v in (["1", "2"] if p.nargs == -1 else ["1"])]
    args = [*name.split(), *ids, *EXTRA.get(name, [])]
    for argv in (["--profile", "nope", *args], [*args, "--profile", "nope"]):
        r = invoke(*argv)
        assert r.exit_code == 1 and "no profile 'nope'" in r.stderr, (argv, r.output)


def complete(words: str) -> list[str]:
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {"_EWC_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    r = CliRunner().invoke(app, [], env=env, prog_name="ewc")
    return r.stdout.split()


def test_shell_completion_offers_the_commands_and_output_formats(monkeypatch):
    # Typer detects the shell from the process tree (shellingham); a user runs this from
    # bash, a test process may have no shell above it.
    monkeypatch.setattr("shellingham.detect_shell", lambda *a, **k: ("bash", "/bin/bash"))
    script = CliRunner().invoke(app, ["--show-completion"], prog_name="ewc").stdout
    assert "_EWC_COMPLETE=complete_bash" in script  # it asks ewc itself: new commands appear
    top = complete("ewc ")
    assert {"logs", "datasets", "webhooks", "rerun", "compare", "cancel-sweep"} <= set(top)
    assert set(complete("ewc datasets ")) == {"upload", "list", "show", "delete"}
    assert complete("ewc logs 1 -o ") == ["table", "json", "csv"]
    assert complete("ewc webhooks list --output j") == ["json"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_profile_reaches_every_module_on_a_real_server(
    server, admin, make_experiment, config_home, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    r = invoke("--profile", "lab", "login", "--url", server, "--token", ADMIN_TOKEN)
    assert r.exit_code == 0 and "'lab'" in r.stderr, r.output  # saved under the global one
    assert list(config.profiles(config.load())) == ["lab"]
    config.set_profile("broken", "http://127.0.0.1:9", "ewc_nothing")
    a = make_experiment(admin, name="a", spec={"dataset": "digits", "seed": 1})
    b = make_experiment(admin, name="b", spec={"dataset": "digits", "seed": 2})

    assert "no token" in invoke("datasets", "list").stderr  # no default profile: it is lab's

    r = invoke("--profile", "lab", "logs", str(a), "-o", "csv")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == "id,attempt,level,time,message"
    r = invoke("--profile", "lab", "datasets", "list", "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout) == {"items": []}, r.output
    r = invoke("--profile", "lab", "webhooks", "list", "-o", "csv")
    assert r.exit_code == 0 and r.stdout.startswith("id,owner,url,"), r.output
    r = invoke("--profile", "lab", "edit", str(a), "--notes", "by profile", "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["notes"] == "by profile", r.output
    r = invoke("--profile", "lab", "compare", str(a), str(b), "-o", "csv")
    assert r.exit_code == 0, r.output
    assert [row["id"] for row in csv.DictReader(io.StringIO(r.stdout))] == [str(a), str(b)]

    # the command's own --profile beats the global one, which beats $EWC_PROFILE
    r = invoke("--profile", "broken", "archive", str(a), "--profile", "lab", "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["archived_at"], r.output
    r = invoke("--profile", "lab", "restore", str(a), env={"EWC_PROFILE": "broken"})
    assert r.exit_code == 0, r.output
    r = invoke("restore", str(a), env={"EWC_PROFILE": "broken"})
    assert r.exit_code == 1 and "127.0.0.1:9" in r.stderr
    r = invoke("restore", str(a), "--profile", "lab", env={"EWC_PROFILE": "broken"})
    assert r.exit_code == 0, r.output
