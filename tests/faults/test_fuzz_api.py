"""Fault (e): property-based fuzzing of the whole HTTP API, authenticated: no 5xx, ever.

Real processes: an API (uvicorn) on PostgreSQL and a redis-server. Schemathesis reads
`/openapi.json` and runs its examples, coverage, fuzzing and stateful phases against every
operation, query parameters included, with an admin's bearer token (so every code path,
cancels included, is reachable), with a bounded number of examples per operation. Then it
does the same to the dashboard's pages and forms (described by a document written here,
since /openapi.json leaves them out), logged in through the login form with the session's
form token. Any 5xx is a failure; the API's own /metrics count of 5xx answers is checked too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.dashboard_forms import CHECKBOXES, FORM_DEFAULTS
from store.migrate import upgrade
from tests.harness.experiments import TINY, token_for
from tests.harness.processes import service_env, start_api
from tests.requirements import missing

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ADMIN_TOKEN = "fuzz-admin-token-0123456789"
#: Examples per operation and phase; the whole run takes well under a minute.
MAX_EXAMPLES = os.environ.get("EWC_FUZZ_EXAMPLES", "15")
SEED = os.environ.get("EWC_FUZZ_SEED", "1")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _schemathesis() -> list[str]:
    found = shutil.which("schemathesis") or shutil.which(
        "schemathesis", path=str(Path(sys.executable).parent)
    )
    if found is None:
        missing("schemathesis", "not installed (pip install -e '.[dev]')")
    # Its own entry point, with a higher recursion limit: hypothesis describes the
    # strategies of a deeply nested schema (the spec with every method) recursively, and at
    # Python's default limit of 1000 CPython 3.11's parser can fail inside that with
    # "SystemError: AST constructor recursion depth mismatch" (a crash of the fuzzer, not a
    # finding about the API).
    return [sys.executable, "-c", _ENTRY]


_ENTRY = (
    "import sys; sys.setrecursionlimit(20_000); sys.argv[0] = 'schemathesis'; "
    "from schemathesis.cli import schemathesis; sys.exit(schemathesis())"
)


#: Inputs that once made a 500 (issue 8), run first by the examples phase of every run.
KNOWN_BAD = {
    "ids": {"unicode digit": {"value": "1,²"}, "beyond any row": {"value": "9" * 20}},
    "cursor": {"beyond any row": {"value": "ZTo5MjIzMzcyMDM2ODU0Nzc1ODA4"}},
    "path": {"name too long": {"value": "a" * 300}},
    "filter": {"id beyond any row": {"value": "sweep = 1e20"},
               "nul byte": {"value": "name = 'a\x00'"}},
}


def _dashboard_schema(csrf_token: str) -> dict:
    """An OpenAPI document of the dashboard's pages and forms (they are left out of
    /openapi.json): every query parameter, path parameter and form field, as strings the
    fuzzer may make anything of. The form token is the session's, so fuzzed forms get past
    the CSRF check to the parsing behind it; logging in and out are left out (they would
    end the session the run uses)."""

    def params(where: str, *names: str) -> list[dict]:
        return [{"name": n, "in": where, "required": where == "path", "schema": {"type": "string"},
                 **({"examples": KNOWN_BAD[n]} if n in KNOWN_BAD else {})}
                for n in names]  # fmt: skip

    def form(*fields: str) -> dict:
        properties = {f: {"type": "string"} for f in fields}
        if "base" in properties:  # nested deeper than the JSON decoder recurses
            properties["base"]["example"] = "[" * 5000
        properties["csrf_token"] = {"type": "string", "enum": [csrf_token]}
        return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": properties, "required": ["csrf_token"],
        }}}}  # fmt: skip

    def get(*query: str, path: tuple[str, ...] = ()) -> dict:
        return {"get": {"parameters": params("query", *query) + params("path", *path),
                        "responses": {"200": {"description": "the page"}}}}  # fmt: skip

    def post(body: dict, path: tuple[str, ...] = ()) -> dict:
        return {"post": {"parameters": params("path", *path), "requestBody": body,
                         "responses": {"303": {"description": "done"}}}}  # fmt: skip

    new_fields = (*FORM_DEFAULTS, *CHECKBOXES)
    eid, sid = ("experiment_id",), ("sweep_id",)
    return {
        "openapi": "3.0.3",
        "info": {"title": "EWC Server dashboard", "version": "1"},
        "paths": {
            "/ui/": get("filter", "order_by", "status", "tag", "owner", "cursor", "submitted",
                        "project", "archived"),
            "/ui/progress": get("ids"),
            "/ui/compare": get("ids"),
            "/ui/login": get("next"),
            "/ui/new": {**get(), **post(form(*new_fields))},
            "/ui/sweeps": {**get(), **post(form("name", "base", "grid"))},
            "/ui/sweeps/{sweep_id}": get(path=sid),
            "/ui/sweeps/{sweep_id}/cancel": post(form(), path=sid),
            "/ui/sweeps/{sweep_id}/plot.png": get("metric", "x", path=sid),
            "/ui/experiments/{experiment_id}": get(path=eid),
            "/ui/experiments/{experiment_id}/cancel": post(form(), path=eid),
            "/ui/experiments/{experiment_id}/rerun": post(form(), path=eid),
            "/ui/experiments/{experiment_id}/edit": post(form("name", "tags", "notes", "project"),
                                                         path=eid),
            "/ui/experiments/{experiment_id}/archive": post(form(), path=eid),
            "/ui/experiments/{experiment_id}/restore": post(form(), path=eid),
            "/ui/experiments/{experiment_id}/plots/{kind}.png": get(path=(*eid, "kind")),
            "/ui/experiments/{experiment_id}/export.{fmt}": get(path=(*eid, "fmt")),
            "/ui/experiments/{experiment_id}/artifacts/{path}": get(path=(*eid, "path")),
            "/ui/static/{name}": get(path=("name",)),
        },
    }


def _log_in(url: str) -> tuple[str, str]:
    """Log in through the dashboard's form: (the session cookie header, its form token)."""
    with httpx.Client(base_url=url, timeout=30) as browser:
        token = CSRF.search(browser.get("/ui/login").text).group(1)
        r = browser.post("/ui/login", data={"token": ADMIN_TOKEN, "next": "/ui/", "csrf_token": token})
        assert r.status_code in (200, 303), r.text
        csrf = CSRF.search(browser.get("/ui/new").text).group(1)
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    return cookie, csrf


def _run(command: list[str], schema: str, headers: list[str], cwd: Path, url: str | None = None):
    """One schemathesis run; (exit code, output, cases generated, operations tested)."""
    done = subprocess.run(
        [
            *command, "run", schema, *(["--url", url] if url else []),
            *[arg for h in headers for arg in ("--header", h)],
            "--checks", "not_a_server_error",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", MAX_EXAMPLES,
            "--seed", SEED,
            "--request-timeout", "10",
            "--generation-database", "none",
            "--workers", "2",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    cases = re.search(r"(\d+) generated", output)
    tested = re.search(r"Tested: (\d+)", output)
    return done.returncode, output, cases.group(1) if cases else "?", int(tested.group(1)) if tested else 0


def test_schemathesis_finds_no_server_error(tmp_path, pg_database, private_redis, processes, say):
    command = _schemathesis()
    upgrade(pg_database)
    env = service_env(
        pg_database,
        private_redis.url,
        tmp_path / "data",
        fast_recovery=True,
        EWC_ADMIN_TOKEN=ADMIN_TOKEN,
        EWC_EVENTS_MAX_S="1",  # a queued job's event stream closes after 1 s
    )
    api, url = start_api(processes, env)
    # Something to find: another user's experiments, one cancelled.
    other = {"Authorization": f"Bearer {token_for(pg_database, 'other')}"}
    with httpx.Client(base_url=url, headers=other, timeout=30) as client:
        ids = [client.post("/v1/experiments", json=TINY).json()["id"] for _ in range(3)]
        client.post(f"/v1/experiments/{ids[0]}/cancel")

    # 1. The v1 API, as /openapi.json describes it (query parameters included).
    code, output, cases, tested = _run(
        command, f"{url}/openapi.json", [f"Authorization: Bearer {ADMIN_TOKEN}"], tmp_path
    )
    failures = re.findall(r"ST\d+ [^\n]*", output)
    say(
        f"schemathesis (seed {SEED}, ≤{MAX_EXAMPLES} examples per operation and phase) ran "
        f"{cases} cases over {tested} API operations: exit code {code}, "
        f"{len(failures)} failure line(s)"
    )
    assert code == 0, output[-6000:]
    assert tested >= 19, output[-3000:]

    # 2. The dashboard's pages and forms, logged in through the login form.
    cookie, csrf = _log_in(url)
    # What the fuzzer sends gets past the CSRF and origin checks to the form's own parsing.
    reach = httpx.post(
        f"{url}/ui/sweeps", headers={"Cookie": cookie, "Origin": url}, timeout=30,
        data={"csrf_token": csrf, "name": "", "base": "{", "grid": "seed=0"},
    )  # fmt: skip
    assert reach.status_code == 422 and "not a JSON object" in reach.text, reach.text[:500]
    schema = tmp_path / "dashboard-openapi.json"
    schema.write_text(json.dumps(_dashboard_schema(csrf)))
    code, output, cases, tested = _run(
        command, str(schema), [f"Cookie: {cookie}", f"Origin: {url}"], tmp_path, url
    )
    say(f"schemathesis on the dashboard ran {cases} cases over {tested} operations: exit code {code}")
    assert code == 0, output[-6000:]
    assert tested >= 16, output[-3000:]

    # The API's own count of what it answered (one process: `start_api` runs one uvicorn).
    counted = httpx.get(f"{url}/metrics", timeout=30).text
    by_class: dict[str, float] = {}
    for family in text_string_to_metric_families(counted):
        for sample in family.samples:
            if sample.name == "ewc_http_requests_total":
                first_digit = sample.labels["status"][0]
                by_class[first_digit] = by_class.get(first_digit, 0.0) + sample.value
    say(f"the API counted {by_class.get('2', 0):.0f} 2xx, {by_class.get('4', 0):.0f} 4xx, "
        f"{by_class.get('5', 0):.0f} 5xx answers")  # fmt: skip
    assert by_class.get("4", 0) > 100, counted[-3000:]  # the fuzzers' cases were counted
    assert by_class.get("5", 0) == 0, [line for line in counted.splitlines() if 'status="5' in line]
    assert api.popen.poll() is None
