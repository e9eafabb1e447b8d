"""Where the client commands find their server and token, and the per-user config file.

Each of the URL and the token is taken from the first of:

1. the command's flag (`--url`, `--token`);
2. the environment (`EWC_URL`, `EWC_TOKEN`);
3. a `.env` file in the current directory (its `EWC_URL=` / `EWC_TOKEN=` lines, as the
   server's settings read theirs);
4. the profile in the config file that `ewc login` writes: `--profile NAME`, else
   `EWC_PROFILE` (environment or `.env`), else the profile named `default`;
5. for the URL only, `http://127.0.0.1:8000` (what `ewc up` serves).

The config file is `$XDG_CONFIG_HOME/ewc/config.toml` (`~/.config/ewc/config.toml` when
XDG_CONFIG_HOME is unset); it holds tokens, so the folder is made 0700 and the file 0600,
written whole (a temporary file renamed over the old one):

    [profiles.default]
    url = "http://127.0.0.1:8000"
    token = "ewc_..."
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_PROFILE = "default"


class ConfigError(Exception):
    """The config file cannot be read, or names no such profile."""


@dataclass(frozen=True)
class Target:
    """The server and token a command uses, and where each came from (for messages)."""

    url: str
    token: str | None
    url_from: str
    token_from: str | None
    profile: str


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ewc" / "config.toml"


def load(path: Path | None = None) -> dict[str, Any]:
    """The config file's contents ({} when there is none); `ConfigError` if unreadable."""
    path = path or config_path()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return data


def profiles(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = data.get("profiles")
    return (
        {k: v for k, v in found.items() if isinstance(v, dict)} if isinstance(found, dict) else {}
    )


def _toml_string(text: str) -> str:
    # A JSON string is a TOML basic string (same escapes; json.dumps never writes "\/").
    return json.dumps(text, ensure_ascii=False)


def dumps(data: dict[str, Any]) -> str:
    """TOML text of {"profiles": {name: {key: str}}} (the only shape this file has)."""
    lines = ["# Written by `ewc login`; holds tokens: keep it private (0600).", ""]
    for name, fields in profiles(data).items():
        lines.append(f"[profiles.{_toml_string(name)}]")
        lines += [f"{k} = {_toml_string(str(v))}" for k, v in fields.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


def save(data: dict[str, Any], path: Path | None = None) -> Path:
    """Write the config file: folder 0700, file 0600 (from its first byte), atomically."""
    path = path or config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dumps(data))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def set_profile(name: str, url: str, token: str, path: Path | None = None) -> Path:
    data = load(path)
    found = profiles(data)
    found[name] = {"url": url, "token": token}
    return save({**data, "profiles": found}, path)


def remove_profile(name: str, path: Path | None = None) -> bool:
    """Forget a profile; False when there was none of that name."""
    data = load(path)
    found = profiles(data)
    if found.pop(name, None) is None:
        return False
    save({**data, "profiles": found}, path)
    return True


def dotenv(directory: Path | None = None) -> dict[str, str]:
    """The EWC_* lines of `.env` in `directory` (the current one), {} without the file."""
    path = (directory or Path.cwd()) / ".env"
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if k.startswith("EWC_") and v}


def resolve(url: str | None = None, token: str | None = None, profile: str | None = None) -> Target:
    """The target of a command whose `--url`/`--token` flags or environment gave `url` and
    `token` (None: not given), in the order of this module's docstring."""
    env = dotenv()
    named = profile or os.environ.get("EWC_PROFILE") or env.get("EWC_PROFILE")
    name = named or DEFAULT_PROFILE
    stored: dict[str, Any] = {}
    if not (url or env.get("EWC_URL")) or not (token or env.get("EWC_TOKEN")):
        # Only then is the file read (a profile named but not needed is not an error).
        found = profiles(load()).get(name)
        if found is None and named:
            raise ConfigError(f"no profile {name!r} in {config_path()}; "
                              f"create it with `ewc login --profile {name}`")  # fmt: skip
        stored = found or {}
    where = f"profile {name!r} ({config_path()})"

    def pick(given: str | None, key: str, field: str) -> tuple[str | None, str | None]:
        if given:
            return given, f"--{field} or ${key}"
        if env.get(key):
            return env[key], f"{key} in {Path.cwd() / '.env'}"
        if stored.get(field):
            return str(stored[field]), where
        return None, None

    found_url, url_from = pick(url, "EWC_URL", "url")
    found_token, token_from = pick(token, "EWC_TOKEN", "token")
    return Target(
        url=found_url or DEFAULT_URL, token=found_token, url_from=url_from or "the default",
        token_from=token_from, profile=name,
    )  # fmt: skip
