"""The compare page's overlays in a real browser (headless chromium, Playwright), against a
real API and worker: two finished runs compared show their overlay images — per-task
accuracy, the average, the loss and (two runs) the accuracy-matrix difference — above each
run's plots, every one a PNG that loads, under the dashboard's CSP."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.chromium import CHROMIUM_ARGS, ensure_chromium, watch_csp
from tests.browser.test_dashboard_browser import service  # noqa: F401 - a fixture
from tests.e2e.conftest import SPEC, wait_for_status
from tests.requirements import require_module

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

SIZES = {"accuracy": 960, "average": 960, "loss": 960, "diff": 720}


@pytest.mark.timeout(1500)  # a new machine first apt-installs chromium
def test_the_compare_page_shows_the_overlays_as_pngs(service):  # noqa: F811
    executable = ensure_chromium()
    sync_api = require_module("playwright.sync_api", "Playwright", "pip install -e '.[dev]'")
    url, token, first = service
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
        r = api.post("/v1/experiments", json={**SPEC, "name": "plain"})
        assert r.status_code == 201, r.text
        second = wait_for_status(api, r.json()["id"], {"succeeded", "failed"}, timeout=180)
        assert second["status"] == "succeeded", second
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

            page.goto(f"{url}/ui/compare?ids={first},{second['id']}")
            overlays = page.locator("#overlays img.overlay")
            assert overlays.count() == 4
            page.wait_for_function(
                "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
            )
            for kind, width in SIZES.items():
                img = f"#overlay-{kind}"
                assert page.eval_on_selector(img, "i => i.naturalWidth") == width, kind
                src = page.eval_on_selector(img, "i => i.src")
                fetched = page.evaluate(
                    "async src => { const r = await fetch(src); const b = new Uint8Array("
                    "await r.arrayBuffer()); return [r.status, r.headers.get('content-type'), "
                    "Array.from(b.slice(0, 8))]; }",
                    src,
                )
                assert fetched == [200, "image/png", [137, 80, 78, 71, 13, 10, 26, 10]], kind
            above = page.evaluate(
                "() => document.querySelector('#overlay-accuracy').compareDocumentPosition("
                "document.querySelector('img[src*=\"/plots/curves.png\"]')) & "
                "Node.DOCUMENT_POSITION_FOLLOWING"
            )
            assert above, "the overlays come before each run's own plots"
            assert csp_violations == [], "the overlays load under the dashboard's CSP"
        finally:
            browser.close()
