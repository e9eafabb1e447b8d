"""The dashboard against a hostile page, in a real browser (headless chromium, Playwright).

A page served from another port of 127.0.0.1 (same site, other origin) tries cross-origin
form POSTs and blind `fetch(mode: "no-cors")` calls to cancel a job, to create one, to start
a sweep and to log the user in as the attacker (login CSRF, with a tossed form-token
cookie); the server refuses each with 403 and nothing changes, while the dashboard's own
forms, its script under the strict Content-Security-Policy (no violation reported) and
logging out (the old cookie stops working) all work.
"""

from __future__ import annotations

import html
import http.server
import re
import threading
import time

import httpx
import pytest

from cli.local_service import api_command
from common.settings import Settings
from tests.browser.chromium import CHROMIUM_ARGS, ensure_chromium, watch_csp
from tests.e2e.conftest import (
    SPEC,
    data_path,
    free_port,
    token_for,
    wait_healthy,
)
from tests.requirements import require_module

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def api_only(tmp_path, processes, redis_url):
    """(url, ada's token, mallory's token) of a real API (uvicorn) on SQLite with no worker,
    so that submitted jobs stay queued (cancellable)."""
    from store.migrate import upgrade

    db_url = f"sqlite:///{tmp_path / 'ewc.db'}"
    upgrade(db_url)
    ada, mallory = token_for(db_url, "ada"), token_for(db_url, "mallory")
    port = free_port()
    env = {
        "EWC_DATABASE_URL": db_url, "EWC_BROKER_URL": redis_url,
        "EWC_DATA_DIR": str(data_path(tmp_path)),
        "EWC_HOST": "127.0.0.1", "EWC_PORT": str(port), "PORT": str(port),
    }  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    # One process: the test reads what the API answered from /metrics, which is per process.
    settings = Settings(_env_file=None, host="127.0.0.1", port=port, api_workers=1)
    api = processes("api", api_command(settings), env)
    wait_healthy(url, api)
    return url, ada, mallory


def post_statuses(url: str, route: str) -> dict[str, float]:
    """{status: count} of the POSTs to `route` (a route template) the API has answered,
    from its Prometheus metrics."""
    out: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if not line.startswith("ewc_http_requests_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels.get("method") == "POST" and labels.get("route") == route:
            out[labels["status"]] = out.get(labels["status"], 0) + float(line.rsplit(" ", 1)[1])
    return out


def answered(url: str, route: str, before: dict[str, float], timeout: float = 30) -> str:
    """The status of the one POST to `route` answered since `before` (event-based wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = post_statuses(url, route)
        new = {k: v - before.get(k, 0) for k, v in now.items() if v > before.get(k, 0)}
        if new:
            assert sum(new.values()) == 1, new
            return next(iter(new))
        time.sleep(0.05)
    raise AssertionError(f"no POST to {route} was answered")


@pytest.fixture
def attacker():
    """A web server on another port of 127.0.0.1 serving the HTML put in its dict:
    (base url, {path: html})."""
    pages: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages.get(self.path, "<p>nothing here</p>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", pages
    server.shutdown()
    server.server_close()


def _fields(values: dict[str, str]) -> str:
    return "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                   for k, v in values.items())  # fmt: skip


#: What the attacker posts: every field of the new-experiment form (their defaults) but
#: full MNIST, and a made-up form token (the real one cannot be read from another origin).
FORGED_NEW = {
    "model": "mlp", "dataset": "mnist", "dataset_update": "full", "splits": "1",
    "epochs": "20", "batch_size": "256", "learning_rate": "0.001", "ewc_lambda": "",
    "ewc_samples": "100", "fim_threshold": "", "fim_samples": "100",
    "incdet_threshold": "1e-06", "fisher": "empirical", "seed": "0", "priority": "0",
    "device": "any", "name": "forged", "tags": "", "csrf_token": "guessed",
}  # fmt: skip
#: The route template of each attacked form (as the API's metrics name it).
ROUTES = {"cancel": "/ui/experiments/{experiment_id}/cancel", "new": "/ui/new",
          "sweep": "/ui/sweeps", "login": "/ui/login"}  # fmt: skip
#: A form token the attacker sets as the login page's cookie (cookies ignore ports).
TOSSED = "A" * 43


@pytest.mark.timeout(1500)  # a new machine first apt-installs chromium
def test_a_page_on_another_port_cannot_use_the_dashboard(api_only, attacker):
    executable = ensure_chromium()
    sync_api = require_module("playwright.sync_api", "Playwright", "pip install -e '.[dev]'")
    url, ada, mallory = api_only
    evil, pages = attacker
    bearer = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ada}"})
    victim = bearer.post("/v1/experiments", json={**SPEC, "name": "victim's job"}).json()["id"]
    other = bearer.post("/v1/experiments", json={**SPEC, "name": "second job"}).json()["id"]

    def unchanged() -> None:
        assert bearer.get(f"/v1/experiments/{victim}").json()["status"] == "queued"
        items = bearer.get("/v1/experiments", params={"limit": 50}).json()["items"]
        assert sorted(e["id"] for e in items) == sorted([victim, other]), "no job was created"
        assert bearer.get("/v1/sweeps").json()["items"] == [], "no sweep was started"

    cancel_url, new_url, login_url = (f"{url}/ui/experiments/{victim}/cancel", f"{url}/ui/new",
                                      f"{url}/ui/login")  # fmt: skip
    toss = f"document.cookie = 'ewc_login_csrf={TOSSED}; path=/ui/login';"
    forms = {
        "cancel": (cancel_url, {"csrf_token": "guessed"}),
        "new": (new_url, FORGED_NEW),
        "sweep": (f"{url}/ui/sweeps", {"name": "forged", "base": "{}", "grid": "seed=0,1",
                                       "csrf_token": "guessed"}),
        "login": (login_url, {"token": mallory, "next": "/ui/", "csrf_token": TOSSED}),
    }  # fmt: skip
    for name, (target, values) in forms.items():
        pages[f"/form-{name}"] = (
            f'<form id="f" method="post" action="{target}">{_fields(values)}</form>'
            f"<script>{toss} document.getElementById('f').submit();</script>"
        )
        body = "new URLSearchParams(" + json_js(values) + ")"
        pages[f"/fetch-{name}"] = (
            f"<script>{toss} fetch('{target}', {{method: 'POST', mode: 'no-cors', "
            f"credentials: 'include', body: {body}}});</script>"
        )
    pages["/frame"] = f'<iframe id="d" src="{url}/ui/" width="600" height="400"></iframe>'

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            csp_violations = watch_csp(page)
            page.goto(f"{url}/ui/login")
            page.fill("#token", ada)
            page.click("button[type=submit]")
            page.wait_for_selector("#experiments")
            assert "ada" in page.inner_text("header .who")
            session_cookie = next(c for c in page.context.cookies() if c["name"] == "ewc_session")
            assert session_cookie["value"] != ada and session_cookie["httpOnly"]

            # The hostile page: a form that submits itself, then a blind fetch, for each.
            # (A blind fetch's answer never reaches the page: Cross-Origin-Resource-Policy
            # blocks it. What the server answered is read from its metrics.)
            for name, (target, _values) in forms.items():
                route = ROUTES[name]
                for kind in ("form", "fetch"):
                    before = post_statuses(url, route)
                    page.goto(f"{evil}/{kind}-{name}")
                    assert answered(url, route, before) == "403", (kind, name)
                    if kind == "form":  # the browser shows the refusal
                        page.wait_for_selector("text=refused")
                    unchanged()
            page.goto(f"{url}/ui/")
            assert "ada" in page.inner_text("header .who"), "still ada: no login CSRF"

            # The dashboard cannot be framed by another page.
            page.goto(f"{evil}/frame")
            page.wait_for_timeout(1000)
            framed = page.frame_locator("#d").locator("#experiments")
            assert framed.count() == 0, "the dashboard rendered inside another site's frame"

            # The dashboard's own forms still work, and so does its script under the CSP.
            csp_violations.clear()
            page.goto(f"{url}/ui/experiments/{other}")
            page.wait_for_selector("#live", state="attached")  # live events: the script runs
            bearer.post(f"/v1/experiments/{other}/cancel")
            page.wait_for_function("() => !document.getElementById('live')", timeout=60_000)
            assert "cancelled" in page.inner_text("#status"), "the page reloaded at the end"
            page.goto(f"{url}/ui/experiments/{victim}")
            page.click("button.danger")  # Cancel
            page.wait_for_url(f"**/ui/experiments/{victim}")
            assert "cancelled" in page.inner_text("#status")
            page.click("text=New experiment")
            page.select_option("#f-dataset", "digits")
            page.fill("#f-name", "from the form")
            page.click("#submit")
            page.wait_for_selector("text=Submitted experiment")
            page.click("nav >> text=Sweeps")
            page.fill("#s-name", "from the sweep form")
            page.click("text=Start sweep")
            page.wait_for_selector("h1:has-text('from the sweep form')")
            page.goto(f"{url}/ui/")
            for exp_id in (victim, other):
                page.check(f'tr[data-id="{exp_id}"] input[name=pick]')
            page.click("#compare-button")  # the script gathers the ticked ids
            page.wait_for_url("**/ui/compare?ids=*")
            compared = page.inner_text("main")
            assert f"#{victim}" in compared and f"#{other}" in compared
            page.goto(f"{url}/ui/sweeps")
            assert csp_violations == [], csp_violations

            # Logging out ends the session: a copy of the old cookie no longer works.
            copy = {"ewc_session": session_cookie["value"]}
            assert httpx.get(f"{url}/ui/", cookies=copy).status_code == 200
            page.click("text=Log out")
            page.wait_for_url("**/ui/login")
            old = httpx.get(f"{url}/ui/", cookies=copy)
            assert old.status_code == 303, "the old session cookie still works"
            assert old.headers["location"].startswith("/ui/login")
        finally:
            browser.close()
            bearer.close()


def json_js(values: dict[str, str]) -> str:
    """`values` as a JavaScript object literal."""
    import json

    return json.dumps(values)
