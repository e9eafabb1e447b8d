"""Issue 8 §5, `ewc up` and the start-up checks: no password in the banner or a migrate
error, the admin token from the environment is not repeated, a short admin token is a
clear start-up error, the port check ignores TIME-WAIT, the data folder, database and
admin-token file are private to the user, and `tokens list` shows at most 6 characters."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from cli.local_service import ADMIN_TOKEN_FROM_ENV, LocalService, StartupError, mask_password
from common.settings import Settings
from store import users
from store.db import make_engine, make_session_factory, unit_of_work

EWC = [sys.executable, "-c", "from cli.main import main; main()"]
PASSWORD = "s3cret-Pa55word"
GOOD_TOKEN = "up-hardening-admin-token-0123456789"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _settings(tmp_path, **values) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", host="127.0.0.1",
                    port=_closed_port(), **values)  # fmt: skip


def test_banner_masks_passwords_and_does_not_repeat_an_env_token(tmp_path, capsys) -> None:
    service = LocalService(_settings(tmp_path, admin_token=GOOD_TOKEN))
    db = f"postgresql+psycopg://ewc:{PASSWORD}@db.example:5432/ewc"
    broker = f"redis://:{PASSWORD}@broker.example:6379/0"
    service._banner(GOOD_TOKEN, ADMIN_TOKEN_FROM_ENV, db, broker)
    out = capsys.readouterr().out
    assert PASSWORD not in out and GOOD_TOKEN not in out, out
    assert "ewc:***@db.example" in out and "EWC_ADMIN_TOKEN" in out
    # A generated token is shown: nobody else has it.
    service._banner("ewc_generated_token_abcdefghijklmnop", "kept in data/admin-token", db, broker)
    assert "ewc_generated_token_abcdefghijklmnop" in capsys.readouterr().out


def test_a_migrate_error_masks_the_password(tmp_path) -> None:
    url = f"postgresql+psycopg://ewc:{PASSWORD}@127.0.0.1:{_closed_port()}/ewc"
    with pytest.raises(StartupError) as caught:
        LocalService(_settings(tmp_path))._migrate(url)
    assert PASSWORD not in str(caught.value) and "***" in str(caught.value), caught.value
    not_a_url = f"postgresql+psycopg://ewc:{PASSWORD}@127.0.0.1:notaport/ewc"
    with pytest.raises(StartupError) as caught:
        LocalService(_settings(tmp_path))._migrate(not_a_url)
    assert PASSWORD not in str(caught.value), caught.value


def test_mask_password_hides_it_as_written_and_decoded() -> None:
    url = "postgresql+psycopg://ewc:p%40ss-w0rd@db/ewc"
    text = mask_password("FATAL for p%40ss-w0rd / p@ss-w0rd at db", url)
    assert "p@ss" not in text and "p%40ss" not in text and text.count("***") == 2


@pytest.mark.parametrize("token", ["a", "ewc_", "x" * 23])
def test_short_admin_tokens_are_refused(token) -> None:
    with pytest.raises(ValueError, match="at least 24"):
        Settings(_env_file=None, admin_token=token)


def test_an_empty_admin_token_means_unset() -> None:
    assert Settings(_env_file=None, admin_token="").admin_token is None


@pytest.mark.parametrize("command", [["api"], ["up"], ["migrate"]])
def test_a_short_admin_token_is_a_clear_start_up_error(tmp_path, command) -> None:
    env = {**os.environ, "EWC_ADMIN_TOKEN": "ewc_", "EWC_DATA_DIR": str(tmp_path)}
    done = subprocess.run([*EWC, *command], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: EWC_ADMIN_TOKEN is 4 characters long"), done.stderr
    assert "Traceback" not in done.stderr


def test_port_check_ignores_connections_in_time_wait(tmp_path) -> None:
    # A server that closed its side first leaves the connection in TIME-WAIT on its port.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first: TIME-WAIT is on the server's port
        client.recv(1)
        client.close()
    settings = Settings(_env_file=None, data_dir=tmp_path, host="127.0.0.1", port=port)
    LocalService(settings)._check_port()  # no "Address already in use"
    # A port really in use is still refused.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = Settings(_env_file=None, data_dir=tmp_path, host="127.0.0.1",
                         port=busy.getsockname()[1])  # fmt: skip
        with pytest.raises(StartupError, match="another server"):
            LocalService(taken)._check_port()


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_data_folder_database_and_admin_token_are_private(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        service = LocalService(_settings(tmp_path))
        db_url, token, origin = service.prepare()
    finally:
        os.umask(old)
    data = tmp_path / "data"
    assert db_url.endswith(str(data / "ewc.db")) and origin.startswith("kept in")
    assert _mode(data) == 0o700
    assert _mode(data / "ewc.db") == 0o600
    assert _mode(data / "admin-token") == 0o600
    assert (data / "admin-token").read_text().strip() == token
    # A folder, database and token file made world-readable by an older version are fixed.
    for path, mode in ((data, 0o755), (data / "ewc.db", 0o644), (data / "admin-token", 0o644)):
        os.chmod(path, mode)
    assert LocalService(_settings(tmp_path)).prepare()[1] == token
    assert (_mode(data), _mode(data / "ewc.db"), _mode(data / "admin-token")) == (0o700, 0o600, 0o600)


def test_migrate_creates_a_private_database(tmp_path) -> None:
    env = {**os.environ, "EWC_DATA_DIR": str(tmp_path / "d")}
    env.pop("EWC_DATABASE_URL", None)
    env.pop("EWC_ADMIN_TOKEN", None)
    done = subprocess.run([*EWC, "migrate"], check=False, env=env, capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: os.umask(0o022))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _mode(tmp_path / "d" / "ewc.db") == 0o600


def test_tokens_list_shows_at_most_6_characters(migrated_url, tmp_path) -> None:
    engine = make_engine(migrated_url)
    try:
        with unit_of_work(make_session_factory(engine)) as s:
            users.ensure_admin(s, "admin", GOOD_TOKEN)
            _row, token = users.create_token(s, users.create_user(s, "ann"))
    finally:
        engine.dispose()
    # A wide terminal, so Rich's table does not shorten the columns this test reads.
    env = {**os.environ, "EWC_DATABASE_URL": migrated_url, "EWC_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    env.pop("EWC_ADMIN_TOKEN", None)
    for output in ("table", "json", "csv"):
        done = subprocess.run([*EWC, "tokens", "list", "-o", output], check=False, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        for secret in (token, GOOD_TOKEN):
            assert secret[:6] in done.stdout and secret[:7] not in done.stdout, done.stdout
    admin_line = next(line for line in done.stdout.splitlines() if ",admin," in line)  # the csv
    assert admin_line.rstrip().endswith("EWC_ADMIN_TOKEN"), done.stdout
