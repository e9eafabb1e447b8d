"""`ewc up` (= `make run`) itself: start it, follow the README's curl flow, Ctrl-C it.

It runs with a temporary data folder and a free port, no EWC_DATABASE_URL and no
EWC_BROKER_URL: SQLite and the embedded redis-server, as on a newcomer's laptop.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.harness.processes import EWC, free_port, spawn
from tests.requirements import ensure_apt

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


README = Path(__file__).resolve().parents[2] / "README.md"

#: Unset for `ewc up`, so that it uses its embedded defaults.
SERVICE_VARIABLES = ("EWC_DATABASE_URL", "EWC_BROKER_URL", "EWC_ADMIN_TOKEN")


def up(tmp_path, port: int):
    """Start `ewc up` on `port` with its data in tmp_path/data."""
    env = {"EWC_DATA_DIR": str(tmp_path / "data"), "PORT": str(port), "EWC_PORT": str(port)}
    return spawn("ewc up", [*EWC, "up"], env, unset=SERVICE_VARIABLES)


def curl(*args: str) -> dict:
    done = subprocess.run(
        ["curl", "-sS", "--fail-with-body", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_ewc_up_serves_the_readme_flow_and_stops_cleanly_on_ctrl_c(tmp_path, monkeypatch):
    ensure_apt("curl", "curl")  # the README's flow, with the real curl
    monkeypatch.chdir(tmp_path)  # no .env or ./data of the checkout
    port = free_port()
    service = up(tmp_path, port)
    try:
        line = service.wait_for_line(lambda s: s.startswith("EWC Server is up: "), timeout=90)
        url = line.split()[4]
        assert url == f"http://127.0.0.1:{port}"
        token = service.wait_for_line(lambda s: s.startswith("Admin token: ")).split()[2]
        assert (tmp_path / "data" / "admin-token").read_text().strip() == token
        pids_line = service.wait_for_line(lambda s: s.startswith("Processes: "))
        pids = [int(p) for p in re.findall(r"pid (\d+)", pids_line)]
        assert len(pids) == 3  # api, worker, broker
        children = {p.pid for p in psutil.Process(service.popen.pid).children(recursive=True)}
        assert set(pids[:2]) <= children

        # The example the banner prints (and the README shows): an original command on mnist-5k.
        example = service.wait_for_line(lambda s: "-d '{" in s)
        spec_json = example.split("-d '", 1)[1].rsplit("'", 1)[0]
        assert spec_json in README.read_text(), "the README's example differs from ewc up's"
        auth = ["-H", f"Authorization: Bearer {token}"]
        created = curl(
            "-X",
            "POST",
            f"{url}/v1/experiments",
            *auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            spec_json,
        )
        assert created["status"] == "queued"
        deadline = time.monotonic() + 120
        while (job := curl(f"{url}/v1/experiments/{created['id']}", *auth))["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "succeeded", job
        metrics = curl(f"{url}/v1/experiments/{created['id']}/metrics", *auth)
        assert len(metrics["accuracy_matrix"]) == 3 and len(metrics["epochs"]) == 15
        assert job["summary"]["average_accuracy"] > 0.8, job["summary"]
    finally:
        service.popen.send_signal(signal.SIGINT)
        code = service.popen.wait(timeout=60)
    assert code == 0, service.output
    assert "Stopped." in service.output
    for pid in {*pids, *children}:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_ewc_up_on_a_busy_port_says_why_and_exits_non_zero(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        service = up(tmp_path, port)
        code = service.popen.wait(timeout=60)
    assert code != 0
    assert f"cannot listen on 127.0.0.1:{port}" in service.output and "PORT=" in service.output
