"""Fault (f): the auth matrix, on a live API with users and tokens made by the real CLI.

`ewc users create` prints a token once (the database keeps only its SHA-256), `ewc tokens
list` never shows one, `ewc tokens revoke` stops one at once. Every `/v1` operation of the
OpenAPI document answers 401 without a token, with a wrong one and with a revoked one.
Everyone reads everything; only the owner or an admin may cancel (403 otherwise).
"""

from __future__ import annotations

import hashlib
import os
import subprocess

import httpx
import pytest
import sqlalchemy as sa

from tests.harness.experiments import TINY
from tests.harness.processes import EWC, service_env, start_api

pytestmark = [pytest.mark.faults]

SPEC = TINY


def _ewc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [*EWC, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _every_v1_operation(url: str, experiment_id: int) -> list[tuple[str, str]]:
    """(method, concrete path) of every /v1 operation in /openapi.json."""
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    found = []
    for template, operations in paths.items():
        if not template.startswith("/v1/"):
            continue
        path = (
            template.replace("{experiment_id}", str(experiment_id))
            .replace("{sweep_id}", "1")
            .replace("{path}", "model.keras")
        )
        found += [(method.upper(), path) for method in operations]
    return found


def test_tokens_from_the_cli_and_the_auth_matrix(tmp_path, pg_database, private_redis, processes, say):
    # Every bad token must get its 401 here: lift the failure throttle (tests/api/
    # test_api_throttle.py proves the throttle itself).
    env = service_env(
        pg_database, private_redis.url, tmp_path / "data", fast_recovery=True,
        EWC_AUTH_FAILURES="100000",
    )  # fmt: skip
    _ewc(env, "migrate")
    made = {}
    for name, flags in (("ann", []), ("bob", []), ("boss", ["--admin"])):
        done = _ewc(env, "users", "create", name, *flags)
        made[name] = done.stdout.strip()
        assert made[name].startswith("ewc_") and "shown once" in done.stderr
    listing = _ewc(env, "tokens", "list").stdout
    assert not any(token in listing for token in made.values())  # prefixes only
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        stored = {row[0] for row in conn.execute(sa.text("SELECT token_hash FROM api_tokens"))}
        bob_token_id = conn.execute(
            sa.text("SELECT t.id FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.name = 'bob'")
        ).scalar_one()
    engine.dispose()
    assert stored == {hashlib.sha256(t.encode()).hexdigest() for t in made.values()}
    assert not stored & set(made.values())
    bob_second = _ewc(env, "tokens", "create", "bob").stdout.strip()

    _, url = start_api(processes, env)

    def client(token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=url, headers=headers, timeout=30)

    with client(made["ann"]) as ann:
        first = ann.post("/v1/experiments", json=SPEC).json()
        second = ann.post("/v1/experiments", json=SPEC).json()
    assert first["owner"] == "ann" and first["status"] == "queued"

    _ewc(env, "tokens", "revoke", str(bob_token_id))
    operations = _every_v1_operation(url, first["id"])
    refused = {"no token": None, "wrong token": "ewc_" + "x" * 43, "revoked token": made["bob"]}
    for label, token in refused.items():
        with client(token) as c:
            codes = {(m, p): c.request(m, p, json=SPEC if m == "POST" else None).status_code
                     for m, p in operations}
        assert set(codes.values()) == {401}, (label, {k: v for k, v in codes.items() if v != 401})

    matrix = {}
    for label, token in (("bob (other user)", bob_second), ("ann (owner)", made["ann"]),
                         ("boss (admin)", made["boss"])):
        with client(token) as c:
            matrix[label] = (
                c.get("/v1/experiments").status_code,
                c.get(f"/v1/experiments/{first['id']}").status_code,
                c.get(f"/v1/experiments/{first['id']}/metrics").status_code,
            )
    with client(bob_second) as bob:
        denied = bob.post(f"/v1/experiments/{first['id']}/cancel")
        assert bob.get(f"/v1/experiments/{first['id']}").json()["status"] == "queued"
    with client(made["ann"]) as ann:
        own = ann.post(f"/v1/experiments/{first['id']}/cancel")
    with client(made["boss"]) as boss:
        admin = boss.post(f"/v1/experiments/{second['id']}/cancel")

    assert all(row == (200, 200, 200) for row in matrix.values()), matrix
    assert denied.status_code == 403 and "only its owner or an admin" in denied.json()["detail"]
    assert own.status_code == 200 and own.json()["status"] == "cancelled"
    assert admin.status_code == 200 and admin.json()["status"] == "cancelled"
    say(
        f"CLI made ann, bob, boss (admin): tokens printed once, stored as SHA-256 only, "
        f"`tokens list` shows prefixes; all {len(operations)} /v1 operations → 401 with no "
        f"token, a wrong token and bob's revoked token (`ewc tokens revoke`); "
        f"list/read/metrics by {', '.join(matrix)} → 200; bob cancels ann's job → "
        f"{denied.status_code}, ann → {own.status_code}, boss → {admin.status_code}"
    )
