"""Finding runs on the dashboard in a real browser (headless chromium, Playwright) against a
real API process (uvicorn, SQLite): type a filter in the list's box, get a misspelt one
back with the server's "did you mean" and the text kept, sort by clicking a column header
(the second click descends), follow a run's sweep from the sweep column — all under the
dashboard's strict Content-Security-Policy. The runs are stored rows with summaries (no
worker: the list is the subject here; tests/browser/test_dashboard_browser.py trains)."""

from __future__ import annotations

import pytest

from cli.local_service import api_command
from common.settings import Settings
from store import sweeps, users
from store.db import make_engine, make_session_factory, unit_of_work
from store.models import Experiment, JobStatus
from tests.browser.chromium import CHROMIUM_ARGS, ensure_chromium
from tests.e2e.conftest import data_path, free_port, token_for, wait_healthy
from tests.requirements import require_module

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

#: (name, ewc λ or None, average accuracy, in the sweep): stored in this order.
RUNS = [("plain", None, 0.70, False), ("lam-1", 1.0, 0.80, True),
        ("lam-100", 100.0, 0.90, True), ("lam-10", 10.0, 0.85, False)]  # fmt: skip


@pytest.fixture
def lab(tmp_path, processes, redis_url):
    """(url, token, {name: id}, sweep id): a real API on SQLite with the runs of RUNS."""
    from store.migrate import upgrade

    db_url = f"sqlite:///{tmp_path / 'ewc.db'}"
    upgrade(db_url)
    token = token_for(db_url, "ada")
    engine = make_engine(db_url)
    with unit_of_work(make_session_factory(engine)) as s:
        ada = users.get_user(s, "ada")
        grid = sweeps.create_sweep(s, owner_id=ada.id, base_spec={}, grid={"seed": [0]},
                                   name="lambdas")  # fmt: skip
        rows = {}
        for name, lam, acc, in_sweep in RUNS:
            spec = {"dataset": "digits", "ewc": None if lam is None else {"lambda": lam}}
            rows[name] = Experiment(owner_id=ada.id, name=name, spec=spec,
                                    status=JobStatus.succeeded, summary={"average_accuracy": acc},
                                    sweep_id=grid.id if in_sweep else None)  # fmt: skip
            s.add(rows[name])
            s.flush()
        ids, sweep_id = {name: e.id for name, e in rows.items()}, grid.id
    engine.dispose()
    port = free_port()
    env = {
        "EWC_DATABASE_URL": db_url, "EWC_BROKER_URL": redis_url,
        "EWC_DATA_DIR": str(data_path(tmp_path)),
        "EWC_HOST": "127.0.0.1", "EWC_PORT": str(port), "PORT": str(port),
    }  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    api = processes("api", api_command(Settings(_env_file=None, host="127.0.0.1", port=port)), env)
    wait_healthy(url, api)
    return url, token, ids, sweep_id


@pytest.mark.timeout(900)  # a new machine first apt-installs chromium
def test_filter_and_sort_the_list_in_chromium(lab):
    executable = ensure_chromium()
    sync_api = require_module("playwright.sync_api", "Playwright", "pip install -e '.[dev]'")
    url, token, ids, sweep_id = lab
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.set_default_timeout(30_000)
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if m.type == "error" and (
                "Content Security Policy" in m.text or "CSP" in m.text) else None)
            page.goto(f"{url}/ui/login")
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_selector("#experiments")
            listed = page.locator("#experiments tr[data-id]")

            def shown() -> list[int]:
                return [int(r.get_attribute("data-id")) for r in listed.all()]

            assert shown() == [ids[name] for name, *_ in reversed(RUNS)]  # newest first

            # The filter box takes the grammar; the page shows what matched.
            page.fill("#filter", "params.ewc.lambda >= 10 and metrics.average_accuracy > 0.8")
            page.click("form.filters button[type=submit]")
            page.wait_for_url(lambda u: "filter=" in u)
            assert shown() == [ids["lam-10"], ids["lam-100"]]

            # A misspelt key: the server's message on the page, the text kept to fix it.
            page.fill("#filter", "params.ewc.lamda > 1")
            page.click("form.filters button[type=submit]")
            assert "did you mean ewc.lambda?" in page.inner_text(".error")
            assert page.input_value("#filter") == "params.ewc.lamda > 1" and shown() == []

            # Sort by clicking a header, within the filter; the second click descends.
            page.fill("#filter", "params.ewc != null")
            page.click("form.filters button[type=submit]")
            page.wait_for_url(lambda u: "null" in u)
            page.click('a.sort[data-sort="avg"]')
            page.wait_for_url(lambda u: "order_by=metrics.average_accuracy" in u)
            assert shown() == [ids["lam-1"], ids["lam-10"], ids["lam-100"]]
            assert page.get_attribute("th[aria-sort]", "aria-sort") == "ascending"
            page.click('a.sort[data-sort="avg"]')
            page.wait_for_url(lambda u: "desc" in u)
            assert shown() == [ids["lam-100"], ids["lam-10"], ids["lam-1"]]
            assert page.get_attribute("th[aria-sort]", "aria-sort") == "descending"
            assert page.input_value("#filter") == "params.ewc != null"  # the filter stays

            assert violations == [], "the list's script runs under its CSP"

            # The sweep column links the run's sweep.
            page.click(f'tr[data-id="{ids["lam-100"]}"] td.sweep a')
            page.wait_for_url(f"**/ui/sweeps/{sweep_id}")
        finally:
            browser.close()
