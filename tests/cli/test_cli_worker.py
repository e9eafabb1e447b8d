"""`ewc worker` refuses what it cannot do with a message, before importing TensorFlow."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--queue", "tpu"], {}, "--queue: tpu is not a queue; use cpu, gpu or cpu,gpu"),
        (["--concurrency", "4"], {}, "--concurrency must be 1"),
        ([], {"EWC_DATABASE_URL": "sqlite:///{tmp}/empty.db"}, "run `ewc migrate` first"),
        (
            [],
            {"EWC_DATABASE_URL": "postgresql+psycopg://u:secret@127.0.0.1:1/x"},
            "cannot reach the database at postgresql+psycopg://u:***@127.0.0.1:1/x",
        ),
    ],
)
def test_ewc_worker_explains_what_is_wrong(tmp_path, monkeypatch, args, env, message):
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    result = CliRunner().invoke(app, ["worker", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "secret" not in result.output and "Traceback" not in result.output
