"""Managing a run on the dashboard in a real browser (headless chromium, Playwright) against
a real API process (uvicorn, SQLite): edit its name, tags and notes, re-run it, archive it
(gone from the list until "show archived" is ticked) and restore it — every form through
the CSRF guard, under the dashboard's strict Content-Security-Policy. The run is a stored
row (no worker: the re-run stays queued)."""

from __future__ import annotations

import pytest

from cli.local_service import api_command
from common.settings import Settings
from store import users
from store.db import make_engine, make_session_factory, unit_of_work
from store.models import Experiment, JobStatus
from tests.browser.chromium import CHROMIUM_ARGS, ensure_chromium, watch_csp
from tests.e2e.conftest import data_path, free_port, token_for, wait_healthy
from tests.requirements import require_module

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

SPEC = {"dataset": "digits", "dataset_update": "permute", "splits": 2, "epochs": 2}


@pytest.fixture
def lab(tmp_path, processes, redis_url):
    """(url, token, id of a succeeded run named "base"): a real API on SQLite."""
    from store.migrate import upgrade

    db_url = f"sqlite:///{tmp_path / 'ewc.db'}"
    upgrade(db_url)
    token = token_for(db_url, "ada")
    engine = make_engine(db_url)
    with unit_of_work(make_session_factory(engine)) as s:
        ada = users.get_user(s, "ada")
        exp = Experiment(owner_id=ada.id, name="base", spec=SPEC, status=JobStatus.succeeded,
                         summary={"average_accuracy": 0.9}, project="ada")  # fmt: skip
        s.add(exp)
        s.flush()
        base = exp.id
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
    return url, token, base


@pytest.mark.timeout(900)  # a new machine first apt-installs chromium
def test_edit_rerun_archive_and_restore_in_chromium(lab):
    executable = ensure_chromium()
    sync_api = require_module("playwright.sync_api", "Playwright", "pip install -e '.[dev]'")
    url, token, base = lab
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.set_default_timeout(30_000)
            violations = watch_csp(page)
            page.goto(f"{url}/ui/login")
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_selector("#experiments")
            page.goto(f"{url}/ui/experiments/{base}")

            # Edit: the form opens from its summary; Save comes back to the page.
            page.click("#edit summary")
            page.fill("#edit-name", "base v2")
            page.fill("#edit-tags", "baseline, ewc")
            page.fill("#edit-notes", "lr too high")
            page.click("#edit-save")
            page.wait_for_url(lambda u: "done=edited" in u)
            assert "base v2" in page.inner_text("h1")
            assert page.inner_text("#notes") == "lr too high"
            assert [t.inner_text() for t in page.locator("p.muted a.tag").all()] == [
                "baseline", "ewc"]  # fmt: skip

            # Re-run: a new queued run, linked back to this one.
            page.click("#rerun")
            page.wait_for_url(lambda u: "done=rerun" in u)
            rerun_id = int(page.url.split("/ui/experiments/")[1].split("?")[0])
            assert rerun_id != base and "base v2 (re-run)" in page.inner_text("h1")
            assert page.inner_text("#rerun-of") == f"#{base}"
            assert "queued" in page.inner_text("#status")

            # Archive: gone from the list until "show archived" is ticked; then restore.
            page.goto(f"{url}/ui/experiments/{base}")
            page.click("#archive")
            page.wait_for_url(lambda u: "done=archived" in u)
            assert page.locator("#restore").count() == 1
            page.goto(f"{url}/ui/")
            rows = page.locator("#experiments tr[data-id]")
            assert [int(r.get_attribute("data-id")) for r in rows.all()] == [rerun_id]
            page.check("#show-archived")
            page.click("form.filters button[type=submit]")
            page.wait_for_url(lambda u: "archived=1" in u)
            assert [int(r.get_attribute("data-id")) for r in rows.all()] == [rerun_id, base]
            page.goto(f"{url}/ui/experiments/{base}")
            page.click("#restore")
            page.wait_for_url(lambda u: "done=restored" in u)
            assert page.locator("#archive").count() == 1
            page.goto(f"{url}/ui/")
            assert [int(r.get_attribute("data-id")) for r in rows.all()] == [rerun_id, base]

            assert violations == [], "the forms work under the page's CSP"
        finally:
            browser.close()
