"""`ewc run`: --json's last line is the result; bad flags exit 2 naming the flag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def test_ewc_run_json_last_line_is_the_result(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "from cli.main import main; main()", "run", "--dataset", "digits",
           "--epochs=3", "--splits=3", "--dataset-update=permute", "--ewc", "--json",
           "--data-dir", str(tmp_path), "--batch-size", "128"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) >= {"spec", "epochs", "accuracy_matrix", "summary", "timings", "fisher", "versions"}
    assert len(result["accuracy_matrix"]) == 3 and result["spec"]["ewc"]["lambda"] == 100.0
    assert "Validation accuracy" in proc.stderr  # the human table went to stderr


def test_bad_flag_value_exits_2_naming_the_flag() -> None:
    res = runner.invoke(app, ["run", "--model", "resnet"])
    assert res.exit_code == 2 and "--model" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["run", "--epochs", "2", "--splits", "3", "--dataset-update", "switch"])
    assert res.exit_code == 2 and "--epochs" in res.output
    res = runner.invoke(app, ["run", "--ewc-lambda", "-1", "--ewc"])
    assert res.exit_code == 2 and "--ewc-lambda" in res.output


def test_missing_dataset_exits_1_with_the_place_to_put_it(tmp_path: Path, monkeypatch) -> None:
    import continual_core.datasets as ds

    monkeypatch.setattr(ds, "CIFAR100_ORIGIN", "http://127.0.0.1:9/cifar-100-python.tar.gz")  # refused
    res = runner.invoke(app, ["run", "--dataset", "cifar100", "--model", "cifarnet", "--data-dir", str(tmp_path),
                              "--epochs", "1", "--splits", "1"])
    assert res.exit_code == 1, res.output
    assert "cifar-100-python.tar.gz" in res.output and "Traceback" not in res.output
