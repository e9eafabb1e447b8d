"""Headless chromium for the browser tests: the binary (apt-installed when missing) and a
watcher of Content-Security-Policy violations."""

from __future__ import annotations

from pathlib import Path

from tests.requirements import ensure_apt

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def watch_csp(page) -> list[str]:
    """Content-Security-Policy violations the page reports (events and console errors)."""
    found: list[str] = []
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    page.on("console", lambda m: found.append(m.text) if m.type == "error" and (
        "CSP violation" in m.text or "Content Security Policy" in m.text) else None)
    return found


def ensure_chromium() -> str:
    """The chromium binary; installed with apt-get when missing and we are root, else
    skipped (a failure in strict mode: CI=true or EWC_TEST_STRICT=1)."""
    return ensure_apt("chromium", "chromium",
                      find=lambda: CHROMIUM if Path(CHROMIUM).exists() else None)
