"""The "EWC test summary" at the end of a pytest run: what ran on which backend, what was
skipped and why (hooks imported by tests/conftest.py).

A test's backend is its `database_url` or `backend` parameter (sqlite, postgresql,
postgresql+redis, ...), "postgresql" for tests on their own PostgreSQL database, else
"no database". With EWC_TEST_SUMMARY=<file> the summary is also written to that file.
Under pytest-xdist (`make test` runs two workers) the controller writes it: the reports
carry their backend, and each worker hands back the resources its fixtures used.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.requirements import STRICT_MARK, strict_reason

SUMMARY_VARIABLE = "EWC_TEST_SUMMARY"
#: What the session used (filled in by fixtures): "PostgreSQL" -> URL, "Redis" -> URL.
RESOURCES: dict[str, str] = {}

_OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
_RANK = {"passed": 0, "xfailed": 1, "xpassed": 1, "skipped": 2, "failed": 3, "error": 3}
_POSTGRES_FIXTURES = {"postgres_url", "pg_database", "private_postgres"}


def backend_of(item: pytest.Item) -> str:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for name in ("database_url", "backend"):
        if name in params:
            return str(params[name])
    if _POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "postgresql"
    return "no database"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().ewc_backend = backend_of(item)


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _failure_text(report) -> str:
    try:
        return str(report.longreprtext)
    except Exception:  # noqa: BLE001 - a report without text has no reason to show
        return ""


def summary_lines(stats: dict) -> list[str]:
    """The summary's lines from the terminal reporter's `stats`."""
    final: dict[str, tuple[str, str, object]] = {}  # nodeid -> (backend, outcome, report)
    for outcome in _OUTCOMES:
        for report in stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            backend = getattr(report, "ewc_backend", "collection")
            known = final.get(nodeid)
            if known is None or _RANK[outcome] > _RANK[known[1]]:
                final[nodeid] = (backend, outcome, report)
    table: dict[str, Counter] = defaultdict(Counter)
    skips: Counter = Counter()
    absent: Counter = Counter()  # strict mode: failed for a missing component
    for backend, outcome, report in final.values():
        table[backend][outcome] += 1
        if outcome == "skipped":
            skips[(backend, _skip_reason(report))] += 1
        elif outcome in ("failed", "error") and STRICT_MARK in (text := _failure_text(report)):
            reason = text.split(STRICT_MARK, 1)[0].strip().splitlines()[-1]
            absent[(backend, reason.removeprefix("Failed: "))] += 1
    why = strict_reason()
    lines = [
        f"strict mode: {'on (' + why + '): a missing real component fails' if why else 'off: a missing real component skips (CI=true or EWC_TEST_STRICT=1 makes it fail)'}",
        *(f"{name}: {url}" for name, url in sorted(RESOURCES.items())),
        f"{'backend':<22}{'passed':>8}{'failed':>8}{'errors':>8}{'skipped':>9}{'xfail':>7}{'total':>7}",
    ]
    order = sorted(table, key=lambda b: (b == "no database", b))
    for backend in order:
        c = table[backend]
        lines.append(
            f"{backend:<22}{c['passed']:>8}{c['failed']:>8}{c['error']:>8}{c['skipped']:>9}"
            f"{c['xfailed'] + c['xpassed']:>7}{sum(c.values()):>7}"
        )
    total = sum(sum(c.values()) for c in table.values())
    lines.append(f"{'all':<22}{'':>40}{total:>7}")
    if total == 0:
        lines.append("NO TESTS RAN")
    if absent:
        lines.append(f"FAILED for a missing component ({sum(absent.values())}), by backend and reason:")
        for (backend, reason), count in sorted(absent.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {count:>4} x [{backend}] {reason}")
    if skips:
        lines.append(f"skipped ({sum(skips.values())}), by backend and reason:")
        for (backend, reason), count in sorted(skips.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {count:>4} x [{backend}] {reason}")
    else:
        lines.append("skipped: none")
    return lines


def pytest_sessionfinish(session):
    """An xdist worker hands what its fixtures used (RESOURCES) back to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["ewc_resources"] = dict(RESOURCES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller (pytest-xdist) gathers each worker's RESOURCES for the summary."""
    for name, used in getattr(node, "workeroutput", {}).get("ewc_resources", {}).items():
        known = RESOURCES.get(name)
        RESOURCES[name] = used if known in (None, used) else f"{known}; {used}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = summary_lines(terminalreporter.stats)
    terminalreporter.write_sep("=", "EWC test summary")
    for line in lines:
        terminalreporter.write_line(line)
    target = os.environ.get(SUMMARY_VARIABLE)
    if target:
        Path(target).write_text(
            "EWC test summary\n" + "\n".join(lines) + f"\npytest exit status: {int(exitstatus)}\n"
        )
