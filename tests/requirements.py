"""What a test needs from the machine, and what happens when it is not there.

A test that needs a real component (a PostgreSQL server, Redis, chromium, curl, the
PostgreSQL binaries, schemathesis, ...) asks for it here instead of calling `pytest.skip`:

- `missing(component, reason)`: locally, skip with the reason; in **strict mode**, fail
  with it, so a CI run cannot turn green while part of the suite quietly did not run.
- `require(condition, component, reason)`: `missing(...)` unless `condition` holds.
- `require_module(name, ...)`: import a module, or `missing(...)` with the import error.
- `ensure_apt(binary, package)`: the path of a program; when it is missing and we are root
  with apt-get, `apt-get install` the Debian package first (as a CI machine needs).
- `postgres_problem(url)`: None if PostgreSQL at `url` accepts a connection, else why not
  (refused, a password needed, the database or role missing, ...).

Strict mode is on when `EWC_TEST_STRICT=1`, or when `CI=true` (as CI services set it, and
`.ci/run` does) unless `EWC_TEST_STRICT=0`. `EWC_TEST_NO_INSTALL=1` stops `ensure_apt`
from installing anything (the program then counts as missing).
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import subprocess
from collections.abc import Callable
from types import ModuleType
from typing import NoReturn
from urllib.parse import urlparse

import pytest

STRICT_VARIABLE = "EWC_TEST_STRICT"
NO_INSTALL_VARIABLE = "EWC_TEST_NO_INSTALL"
#: Ends the message of a test failed for a missing component (the summary looks for it).
STRICT_MARK = " [strict mode ("
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
#: Seconds one `apt-get` command may take (a new machine downloads chromium: minutes).
APT_TIMEOUT_S = 900


def strict_reason() -> str | None:
    """Why strict mode is on (`EWC_TEST_STRICT=1` or `CI=true`), or None when it is off."""
    explicit = os.environ.get(STRICT_VARIABLE, "").strip().lower()
    if explicit in _TRUE:
        return f"{STRICT_VARIABLE}={os.environ[STRICT_VARIABLE]}"
    if explicit in _FALSE:
        return None
    if os.environ.get("CI", "").strip().lower() in _TRUE:
        return f"CI={os.environ['CI']}"
    return None


def strict() -> bool:
    """True when a missing real component must fail the test instead of skipping it."""
    return strict_reason() is not None


def missing(component: str, reason: str) -> NoReturn:
    """Skip the test because `component` is missing, or fail it in strict mode."""
    message = f"{component} is missing: {reason}"
    why = strict_reason()
    if why is not None:
        pytest.fail(
            f"{message}{STRICT_MARK}{why}): a missing real component fails the test; "
            f"{STRICT_VARIABLE}=0 makes it skip]",
            pytrace=False,
        )
    pytest.skip(message, allow_module_level=True)  # also at a module's top level


def require(condition: object, component: str, reason: str) -> None:
    """`missing(component, reason)` unless `condition` is true."""
    if not condition:
        missing(component, reason)


def require_module(name: str, component: str | None = None, hint: str = "") -> ModuleType:
    """Import module `name`, or `missing(...)` with the import error (and `hint`)."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        detail = f"cannot import {name} ({error})" + (f"; {hint}" if hint else "")
        missing(component or name, detail)


def ensure_apt(
    binary: str, package: str, find: Callable[[], str | None] | None = None
) -> str:
    """The path of `binary` (found by `find`, default: on PATH), installing the Debian
    `package` with apt-get first when it is missing and we are root; else `missing(...)`."""
    locate = find or (lambda: shutil.which(binary))
    found = locate()
    if found:
        return found
    if os.environ.get(NO_INSTALL_VARIABLE, "").strip().lower() in _TRUE:
        missing(binary, f"not installed, and {NO_INSTALL_VARIABLE} forbids installing "
                        f"Debian's {package} package")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        missing(binary, f"not installed and cannot be installed here (not root or no "
                        f"apt-get); install Debian's {package} package")
    done = _apt("install", "-y", package)
    if done.returncode != 0 or not locate():  # stale or no package lists: update, retry
        updated = _apt("update")
        if updated.returncode != 0:
            missing(binary, f"`apt-get update` failed: {updated.stderr.strip()[-300:]}")
        done = _apt("install", "-y", package)
        if done.returncode != 0:
            missing(binary, f"`apt-get install {package}` failed: {done.stderr.strip()[-300:]}")
    found = locate()
    if not found:
        missing(binary, f"apt-get installed {package} but {binary} is still not found")
    return found


def _apt(*args: str) -> subprocess.CompletedProcess:
    """Run apt-get (waiting for another apt's lock rather than failing on it)."""
    return subprocess.run(
        ["apt-get", "-o", "DPkg::Lock::Timeout=600", *args],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False,
    )


# PostgreSQL ----------------------------------------------------------------------------------


def describe_postgres_error(url: str, message: str) -> str:
    """A one-line reason from libpq's error `message` for connecting to `url`."""
    parsed = urlparse(url.replace("+psycopg", ""))
    where = f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}"
    user, database = parsed.username or "(default user)", (parsed.path or "/").lstrip("/")
    text = " ".join(message.split())
    lowered = text.lower()
    if "connection refused" in lowered:
        cause = f"connection refused: nothing listens at {where}"
    elif "no password supplied" in lowered or "password authentication failed" in lowered:
        cause = (f"the server at {where} asks user {user} for a password: put it in the URL "
                 "(postgresql+psycopg://user:password@host/db) or allow trust auth")
    elif "does not exist" in lowered and "database" in lowered:
        cause = f'database "{database}" does not exist at {where} (createdb -h {parsed.hostname} {database})'
    elif "does not exist" in lowered and "role" in lowered:
        cause = f'role "{user}" does not exist at {where}'
    elif "timeout" in lowered or "timed out" in lowered:
        cause = f"no answer from {where} in time"
    else:
        return f"cannot connect to {where}: {text[:300]}"
    return cause


@functools.cache
def postgres_problem(url: str) -> str | None:
    """None if the PostgreSQL at `url` runs `SELECT 1`, else why it does not (cached)."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    except ImportError as error:
        return f"the PostgreSQL driver cannot be imported ({error})"
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None
    except Exception as error:  # noqa: BLE001 - every reason is reported, none hidden
        return describe_postgres_error(url, str(getattr(error, "orig", None) or error))
    finally:
        engine.dispose()
