"""The dashboard against a hostile page and a careless client: server-side sessions that
logging out ends, form tokens and same-origin checks on every POST, forms that accept only
what they render, and the security headers of every page. (The same attacks from a real
page on another port, in chromium: tests/browser/test_dashboard_browser.py.)"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from store import users
from store.db import unit_of_work
from store.models import ApiToken, BrowserSession, Experiment, JobStatus, Sweep, utcnow
from tests.fixtures.dashboard import ADMIN_TOKEN, csrf_of, log_in, new_form, sweep_form

ATTACKER = "http://127.0.0.1:9999"  # another port of the same host: same site, other origin


def _count(session_factory, model) -> int:
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(model))


def _cookie(client) -> str:
    return client.cookies.get("ewc_session", path="/ui")


# Sessions ---------------------------------------------------------------------------------


def test_logout_ends_the_session_on_the_server(ui, session_factory):
    old = _cookie(ui)
    assert ui.get("/ui/", follow_redirects=False).status_code == 200
    r = ui.post("/ui/logout", data={"csrf_token": csrf_of(ui)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert _count(session_factory, BrowserSession) == 0
    ui.cookies.set("ewc_session", old, path="/ui")  # a copy of the cookie, kept after logout
    r = ui.get("/ui/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def test_the_session_id_is_stored_hashed_and_expires(ui, session_factory, app_settings):
    sid = _cookie(ui)
    with session_factory() as s:
        row = s.scalar(select(BrowserSession))
        assert row.session_hash == hashlib.sha256(sid.encode()).hexdigest() != sid
        lifetime = row.expires_at - row.created_at
    assert lifetime == timedelta(seconds=app_settings.session_ttl_s) == timedelta(hours=12)
    with unit_of_work(session_factory) as s:
        s.execute(update(BrowserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert ui.get("/ui/", follow_redirects=False).status_code == 303, "an expired session"


def test_the_session_lasts_as_the_setting_says(api, session_factory, app_settings):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(app_settings.model_copy(update={"session_ttl_s": 90}))) as client:
        r = log_in(client)
        assert r.status_code == 303 and "max-age=90" in r.headers["set-cookie"].lower()
    with session_factory() as s:
        row = s.scalar(select(BrowserSession))
        assert row.expires_at - row.created_at == timedelta(seconds=90)


def test_revoking_the_token_ends_its_browser_sessions(ui, session_factory):
    with unit_of_work(session_factory) as s:
        token_id = s.scalar(
            select(ApiToken.id).where(ApiToken.token_hash == users.hash_token(ADMIN_TOKEN))
        )
        users.revoke_token(s, token_id)
    assert ui.get("/ui/", follow_redirects=False).status_code == 303


def test_logging_in_again_replaces_the_session(ui, session_factory):
    first = _cookie(ui)
    assert log_in(ui).status_code == 303
    assert _cookie(ui) != first
    assert _count(session_factory, BrowserSession) == 1, "the previous session ended"


# Form tokens and origins ------------------------------------------------------------------


@pytest.fixture
def queued(ui, admin_id, make_experiment) -> int:
    return make_experiment(admin_id, status=JobStatus.queued, num_tasks=2, total_epochs=4)


def _posts(ui, queued: int) -> dict[str, tuple[str, dict[str, str]]]:
    """Every state-changing dashboard form, filled in as its page would."""
    return {
        "cancel": (f"/ui/experiments/{queued}/cancel", {"csrf_token": csrf_of(ui)}),
        "new": ("/ui/new", new_form(ui, dataset="digits", name="forged")),
        "sweep": ("/ui/sweeps", sweep_form(ui, base='{"dataset": "digits"}', grid="seed=0,1")),
        "rerun": (f"/ui/experiments/{queued}/rerun", {"csrf_token": csrf_of(ui)}),
        "edit": (f"/ui/experiments/{queued}/edit", {"csrf_token": csrf_of(ui), "name": "forged",
                                                    "tags": "", "notes": "", "project": ""}),
        "archive": (f"/ui/experiments/{queued}/archive", {"csrf_token": csrf_of(ui)}),
        "restore": (f"/ui/experiments/{queued}/restore", {"csrf_token": csrf_of(ui)}),
        "sweep-cancel": ("/ui/sweeps/1/cancel", {"csrf_token": csrf_of(ui)}),
        "logout": ("/ui/logout", {"csrf_token": csrf_of(ui)}),
    }


def _unchanged(ui, session_factory, queued: int) -> None:
    with session_factory() as s:
        assert s.get(Experiment, queued).status == JobStatus.queued
        assert s.get(Experiment, queued).name is None
        assert s.scalar(select(func.count()).select_from(Experiment)) == 1
        assert s.scalar(select(func.count()).select_from(Sweep)) == 0
    assert ui.get("/ui/", follow_redirects=False).status_code == 200, "still logged in"


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_every_form_needs_the_session_token(ui, session_factory, queued, token):
    for name, (path, data) in _posts(ui, queued).items():
        data = {k: v for k, v in data.items() if k != "csrf_token"}
        if token is not None:
            data["csrf_token"] = token
        form = {"Content-Type": "application/x-www-form-urlencoded"}  # even when empty
        r = ui.post(path, data=data, headers=form, follow_redirects=False)
        assert r.status_code == 403, (name, r.status_code, r.text[:300])
        assert "token is missing or out of date" in r.text, name
    _unchanged(ui, session_factory, queued)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": ATTACKER},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},
    ],
    ids=["other-port", "null", "other-host", "same-site", "cross-site"],
)
def test_every_form_refuses_another_origin(ui, session_factory, queued, headers):
    """Even with the right token (which such a page cannot read): the origin decides."""
    for name, (path, data) in _posts(ui, queued).items():
        r = ui.post(path, data=data, headers=headers, follow_redirects=False)
        assert r.status_code == 403, (name, r.status_code)
        assert "another" in r.text, name
    _unchanged(ui, session_factory, queued)


def test_forms_from_the_dashboard_itself_pass(ui, session_factory, queued):
    same = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    path, data = _posts(ui, queued)["cancel"]
    assert ui.post(path, data=data, headers=same, follow_redirects=False).status_code == 303
    with session_factory() as s:
        assert s.get(Experiment, queued).status == JobStatus.cancelled
    # Behind a proxy that keeps the public host in X-Forwarded-Host.
    path, data = _posts(ui, queued)["new"]
    proxied = {"Origin": "https://ewc.example.org", "X-Forwarded-Host": "ewc.example.org"}
    assert ui.post(path, data=data, headers=proxied, follow_redirects=False).status_code == 303


def test_login_refuses_another_origin_and_a_missing_token(ui, session_factory):
    """Login CSRF: another page must not swap the user's session for the attacker's."""
    before = _cookie(ui)
    form = {"token": ADMIN_TOKEN, "next": "/ui/", "csrf_token": csrf_of(ui, "/ui/login")}
    for headers, data in (
        ({"Origin": ATTACKER}, form),
        ({"Sec-Fetch-Site": "same-site"}, form),
        ({}, {**form, "csrf_token": "tossed-cookie-value"}),
        ({}, {k: v for k, v in form.items() if k != "csrf_token"}),
    ):
        r = ui.post("/ui/login", data=data, headers=headers, follow_redirects=False)
        assert r.status_code == 403, (headers, r.status_code)
        assert "ewc_session" not in r.headers.get("set-cookie", "")
        assert "Log in" in r.text and 'role="alert"' in r.text, "shown on the login page"
    assert _cookie(ui) == before and _count(session_factory, BrowserSession) == 1


# Forms accept only what they render -------------------------------------------------------


def _refused_on(page_marker: str, r, code: int, words: str) -> None:
    assert r.status_code == code, (r.status_code, r.text[:400])
    assert page_marker in r.text, "the error is shown on the form's page"
    assert words in r.text


def test_the_new_experiment_form_accepts_only_its_fields(ui, session_factory):
    csrf = csrf_of(ui)
    page = '<form method="post" action="/ui/new"'
    _refused_on(page, ui.post("/ui/new"), 415, "no form fields")
    _refused_on(page, ui.post("/ui/new", json={"csrf_token": csrf, "dataset": "mnist"}), 415,
                "application/json")  # fmt: skip
    r = ui.post("/ui/new", data={"csrf_token": csrf}, files={"name": ("x.txt", b"file")})
    _refused_on(page, r, 415, "multipart/form-data")
    assert "UploadFile" not in r.text
    r = ui.post("/ui/new", data={"csrf_token": csrf})
    _refused_on(page, r, 422, "the form lacks ")
    assert "batch_size" in r.text and "ewc_lambda" in r.text, "every field it lacks is named"
    _refused_on(page, ui.post("/ui/new", data=new_form(ui, time_limit_s="5")), 422,
                "has no field &#39;time_limit_s&#39;")  # fmt: skip
    r = ui.post("/ui/new", content="&".join([*(f"{k}={v}" for k, v in new_form(ui).items()),
                                             "epochs=3"]),
                headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    _refused_on(page, r, 422, "&#39;epochs&#39; is given more than once")
    r = ui.post("/ui/new", data=new_form(ui, dataset="", epochs="", splits=""))
    assert r.status_code == 422
    assert 'id="err-epochs">required' in r.text and 'id="err-splits">required' in r.text
    assert _count(session_factory, Experiment) == 0, "nothing was created"


def test_the_sweep_and_login_forms_accept_only_their_fields(ui, session_factory):
    page = '<form method="post" action="/ui/sweeps"'
    csrf = csrf_of(ui, "/ui/sweeps")
    _refused_on(page, ui.post("/ui/sweeps", json={"base": {}, "grid": {"seed": [0]}}), 415,
                "application/json")  # fmt: skip
    _refused_on(page, ui.post("/ui/sweeps", data={"csrf_token": csrf, "grid": "seed=0"}), 422,
                "the form lacks base, name")  # fmt: skip
    _refused_on(page, ui.post("/ui/sweeps", data=sweep_form(ui, base="", grid="seed=0")), 422,
                "required: the base spec")  # fmt: skip
    deep = "[" * 9_000 + "]" * 9_000  # (within the body limit once URL-encoded)
    nested: object = 1
    for _ in range(9):
        nested = [nested]
    for base in (deep, json.dumps({"ewc": {"a": nested}})):  # 9 000 deep; 11 deep
        _refused_on(page, ui.post("/ui/sweeps", data=sweep_form(ui, base=base, grid="seed=0")),
                    422, "8 levels")  # fmt: skip
    assert _count(session_factory, Sweep) == 0 and _count(session_factory, Experiment) == 0

    login = csrf_of(ui, "/ui/login")
    for r in (
        ui.post("/ui/login", json={"token": ADMIN_TOKEN, "next": "/ui/", "csrf_token": login}),
        ui.post("/ui/login", data={"token": ADMIN_TOKEN, "csrf_token": login, "admin": "1"}),
        ui.post("/ui/login", data={"csrf_token": login}),
    ):
        assert r.status_code in (415, 422) and "Log in" in r.text and "refused" in r.text
        assert "ewc_session" not in r.headers.get("set-cookie", "")
    assert _count(session_factory, BrowserSession) == 1


# Security headers, and pages the strict CSP allows ----------------------------------------

INLINE = re.compile(r"<script(?![^>]*\bsrc=)|\sstyle=|\son[a-z]+=", re.IGNORECASE)


def test_every_dashboard_response_carries_the_security_headers(ui, admin_id, make_experiment):
    from tests.fixtures.dashboard import sample_result

    done = make_experiment(admin_id, result=sample_result(2), num_tasks=2, total_epochs=4,
                           current_task=2, current_epoch=4)  # fmt: skip
    queued = make_experiment(admin_id, status=JobStatus.queued, num_tasks=2, total_epochs=4)
    assert ui.post("/ui/sweeps", data=sweep_form(ui, base='{"dataset": "digits"}', grid="seed=0"),
                   follow_redirects=False).status_code == 303  # fmt: skip
    pages = ["/ui/", f"/ui/experiments/{done}", f"/ui/experiments/{queued}",
             f"/ui/compare?ids={done},{queued}", "/ui/new", "/ui/sweeps", "/ui/sweeps/1",
             "/ui/login"]  # fmt: skip
    responses = [ui.get(p) for p in pages]
    responses += [
        ui.post("/ui/new", data=new_form(ui, epochs="x")),  # a form with errors
        ui.post(f"/ui/experiments/{done}/cancel", data={"csrf_token": "x"}),  # refused
        ui.get("/ui/experiments/999"),  # 404
        ui.get("/ui/experiments/0"),  # 422 (path validation)
        ui.get(f"/ui/experiments/{done}/plots/curves.png"),
        ui.get("/ui/static/dashboard.js"),
        ui.get("/", follow_redirects=False),
    ]
    ui.cookies.clear()
    responses.append(ui.get("/ui/", follow_redirects=False))  # 303 to the login page
    for r in responses:
        where = f"{r.request.method} {r.request.url.path} → {r.status_code}"
        csp = r.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, where
        assert "unsafe-inline" not in csp and "default-src 'none'" in csp, where
        assert r.headers.get("x-frame-options") == "DENY", where
        assert r.headers.get("x-content-type-options") == "nosniff", where
        assert r.headers.get("referrer-policy") == "same-origin", where
        if r.headers.get("content-type", "").startswith("text/html"):
            assert not INLINE.search(r.text), (where, INLINE.search(r.text))
    assert responses[0].headers["cache-control"] == "no-store"
    assert "max-age" in ui.get("/ui/static/style.css").headers["cache-control"]
