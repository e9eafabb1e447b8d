"""`ewc login`/`ewc logout` and where the client commands find their server: the config
file's modes (folder 0700, file 0600, whatever the umask), profiles, and the order flags >
environment > `.env` > profile, on real files and against a real API process."""

from __future__ import annotations

import os
import stat
import tomllib

import pytest

from cli import config
from tests.fixtures import cli_server
from tests.fixtures.cli_server import invoke
from tests.fixtures.dashboard import ADMIN_TOKEN

server, admin, config_home = cli_server.server, cli_server.admin, cli_server.config_home
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_file_is_private_whatever_the_umask(config_home):
    old = os.umask(0)
    try:
        (config_home / "ewc").mkdir(parents=True, mode=0o755)
        path = config.set_profile("default", "http://a:1", "ewc_secret")
    finally:
        os.umask(old)
    assert path == config_home / "ewc" / "config.toml"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    config.set_profile("lab", "http://b:2", "ewc_other")  # rewritten whole: still 0600
    assert mode(path) == 0o600 and [p.name for p in path.parent.iterdir()] == ["config.toml"]


def test_profiles_round_trip_through_toml(config_home):
    odd = 'ewc_"quoted"\\back\u00e9'
    config.set_profile("my lab", "http://lab:8000", odd)
    config.set_profile("default", "http://x", "t")
    data = tomllib.loads(config.config_path().read_text())
    assert data["profiles"]["my lab"] == {"url": "http://lab:8000", "token": odd}
    assert config.remove_profile("my lab") and not config.remove_profile("my lab")
    assert list(config.profiles(config.load())) == ["default"]


def test_flags_then_env_then_dotenv_then_profile(config_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config.resolve() == config.Target(
        url=config.DEFAULT_URL, token=None, url_from="the default", token_from=None,
        profile="default")  # fmt: skip
    config.set_profile("default", "http://prof:1", "tok-profile")
    config.set_profile("lab", "http://lab:2", "tok-lab")
    got = config.resolve()
    assert (got.url, got.token) == ("http://prof:1", "tok-profile") and "profile" in got.url_from

    (tmp_path / ".env").write_text("EWC_TOKEN=tok-dotenv\nEWC_DATABASE_URL=sqlite://\n")
    got = config.resolve()
    assert (got.url, got.token) == ("http://prof:1", "tok-dotenv") and ".env" in got.token_from
    got = config.resolve(token="tok-flag-or-env")
    assert got.token == "tok-flag-or-env" and got.url == "http://prof:1"

    monkeypatch.setenv("EWC_PROFILE", "lab")
    assert config.resolve().url == "http://lab:2"
    assert config.resolve(profile="default").url == "http://prof:1"  # --profile beats it
    monkeypatch.delenv("EWC_PROFILE")
    (tmp_path / ".env").write_text("EWC_PROFILE=lab\n")
    assert config.resolve().token == "tok-lab"
    with pytest.raises(config.ConfigError, match="no profile 'nope'.*ewc login --profile nope"):
        config.resolve(profile="nope")
    assert config.resolve("http://u", "t", profile="nope").url == "http://u"  # not needed


@SQLITE
def test_login_profiles_and_precedence_on_a_real_server(server, config_home, tmp_path,
                                                        monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    path = config_home / "ewc" / "config.toml"
    r = invoke("login", "--url", server, "--token", "ewc_not_a_token_of_this_server")
    assert r.exit_code == 1 and "not saved" in r.stderr and not path.exists()

    r = invoke("login", "--url", server + "/", "--token", ADMIN_TOKEN)
    assert r.exit_code == 0, r.output
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert tomllib.loads(path.read_text())["profiles"]["default"] == {
        "url": server, "token": ADMIN_TOKEN}  # fmt: skip
    r = invoke("list", "-o", "json")  # nothing but the profile
    assert r.exit_code == 0, r.output

    r = invoke("login", "--profile", "lab", "--url", server, input=ADMIN_TOKEN + "\n")
    assert r.exit_code == 0, r.output  # the token asked for, unseen
    assert ADMIN_TOKEN not in r.stdout
    assert invoke("list", "--profile", "lab").exit_code == 0
    assert invoke("queues", env={"EWC_PROFILE": "lab"}).exit_code == 0
    r = invoke("list", "--profile", "nope")
    assert r.exit_code == 1 and "no profile 'nope'" in r.stderr

    # .env beats the profile, the environment beats .env, a flag beats the environment
    (tmp_path / ".env").write_text("EWC_TOKEN=ewc_wrong_token_from_dotenv_file\n")
    assert invoke("list").exit_code == 1
    assert invoke("list", env={"EWC_TOKEN": ADMIN_TOKEN}).exit_code == 0
    assert invoke("list", "--token", "ewc_wrong_flag", env={"EWC_TOKEN": ADMIN_TOKEN}).exit_code == 1
    (tmp_path / ".env").write_text("EWC_URL=http://127.0.0.1:9\n")
    r = invoke("list")
    assert r.exit_code == 1 and "127.0.0.1:9" in r.stderr  # the .env's URL, the profile's token
    assert invoke("list", "--url", server).exit_code == 0
    (tmp_path / ".env").unlink()

    assert invoke("logout").exit_code == 0
    r = invoke("list")
    assert r.exit_code == 1 and "no token" in r.stderr and "ewc login" in r.stderr
    assert invoke("logout").exit_code == 1
    assert invoke("logout", "--profile", "lab").exit_code == 0
    assert tomllib.loads(path.read_text()) == {}
