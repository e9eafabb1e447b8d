"""The experiment page's Logs section: the stored lines (escaped), whether the page follows
them, the text download, and the session-authenticated twin of the v1 logs route."""

from __future__ import annotations

import re

from sqlalchemy import update

from store import logs
from store.db import unit_of_work
from store.logs import END_LEVEL, LogLine
from store.models import Experiment, JobStatus, utcnow
from tests.fixtures.events import parse_sse


def write(factory, exp: int, *lines: tuple[str, str]) -> None:
    with unit_of_work(factory) as s:
        logs.append_lines(s, exp, 1, [LogLine(lv, m, utcnow()) for lv, m in lines])


def test_a_failed_jobs_page_shows_its_log_with_the_traceback(ui, admin_id, make_experiment,
                                                              session_factory):  # fmt: skip
    exp = make_experiment(admin_id, status=JobStatus.failed, error="ValueError: <b>boom</b>")
    write(session_factory, exp, ("INFO", "ewc.worker event=job_start"),
          ("ERROR", ("ewc.worker event=job_crashed\nTraceback (most recent call last):\n"
                     "ValueError: <b>boom</b>")),
          (END_LEVEL, "attempt 1 ended on w1: failed"))  # fmt: skip
    page = ui.get(f"/ui/experiments/{exp}")
    assert page.status_code == 200
    section = page.text[page.text.index('<section class="card" id="logs">'):]
    assert "<h2>Logs</h2>" in section
    pre = re.search(r'<pre class="log" id="log-lines"([^>]*)>(.*?)</pre>', section, re.DOTALL)
    attrs, body = pre.groups()
    assert "data-follow" not in attrs, "a finished job's log is complete: nothing to follow"
    assert 'class="log-error"' in body and "Traceback (most recent call last):" in body
    assert "&lt;b&gt;boom&lt;/b&gt;" in body and "<b>boom" not in body
    assert body.count("[attempt 1]") == 3
    assert f'href="/ui/experiments/{exp}/logs?format=text"' in section
    assert '<script src="/ui/static/logs.js"></script>' in section
    text = ui.get(f"/ui/experiments/{exp}/logs", params={"format": "text"})
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text.splitlines()[-1].endswith("END [attempt 1] attempt 1 ended on w1: failed")
    script = ui.get("/ui/static/logs.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "EventSource" in script.text and "follow=true" in script.text


def test_a_running_jobs_page_follows_from_its_last_line(ui, admin_id, make_experiment,
                                                        session_factory):  # fmt: skip
    exp = make_experiment(admin_id, status=JobStatus.running, attempts=1)
    page = ui.get(f"/ui/experiments/{exp}").text
    assert 'id="no-logs"' in page and "they appear here as the job runs" in page
    assert re.search(r'id="log-lines" data-experiment="\d+" data-after="0" data-follow="1" hidden', page)
    write(session_factory, exp, ("INFO", "first"), ("WARNING", "tensorflow retracing"))
    page = ui.get(f"/ui/experiments/{exp}").text
    after = int(re.search(r'data-after="(\d+)" data-follow="1">', page).group(1))
    assert after > 0 and 'id="no-logs"' not in page
    # The twin routes: a page of JSON, and the stream the script opens (after its last line).
    got = ui.get(f"/ui/experiments/{exp}/logs").json()
    assert [x["message"] for x in got["lines"]] == ["first", "tensorflow retracing"]
    write(session_factory, exp, (END_LEVEL, "attempt 1 ended"))
    with unit_of_work(session_factory) as s:
        s.execute(update(Experiment).where(Experiment.id == exp)
                  .values(status=JobStatus.succeeded, finished_at=utcnow()))  # fmt: skip
    events = parse_sse(ui.get(f"/ui/experiments/{exp}/logs",
                              params={"follow": "true", "after": after}).text)  # fmt: skip
    assert [(k, d.get("message", d.get("status"))) for k, _, d in events] == [
        ("line", "attempt 1 ended"), ("end", "succeeded"),
    ]  # fmt: skip


def test_the_twin_route_needs_a_login(api, admin_id, make_experiment):
    exp = make_experiment(admin_id)
    del api.headers["Authorization"]
    r = api.get(f"/ui/experiments/{exp}/logs", follow_redirects=False)
    assert r.status_code in (303, 401)
    assert api.get("/ui/experiments/999/logs", follow_redirects=False).status_code in (303, 401)
