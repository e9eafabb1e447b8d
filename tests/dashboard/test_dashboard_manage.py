"""The experiment page's Re-run, Edit, Archive and Restore forms, and the list's "show
archived" toggle and project box (the real app, logged in through the login form)."""

from __future__ import annotations

from store.models import Experiment, JobStatus
from tests.fixtures.dashboard import csrf_of, sample_result


def _post(ui, path: str, **fields: str):
    return ui.post(path, data={"csrf_token": csrf_of(ui, "/ui/"), **fields}, follow_redirects=False)


def _list(ui, query: str = "") -> str:
    page = ui.get(f"/ui/{query}")
    assert page.status_code == 200
    return page.text


def test_rerun_edit_archive_and_restore_from_the_experiment_page(
    ui, admin_id, make_experiment, session_factory
):
    done = make_experiment(admin_id, result=sample_result(2), name="base", project="admin",
                           spec={"dataset": "digits", "dataset_update": "permute", "splits": 2,
                                 "epochs": 2})  # fmt: skip
    page = ui.get(f"/ui/experiments/{done}").text
    for marker in ('id="rerun"', 'id="archive"', 'id="edit"', 'name="notes"'):
        assert marker in page, marker

    r = _post(ui, f"/ui/experiments/{done}/rerun")
    assert r.status_code == 303, r.text
    new_id = int(r.headers["location"].split("/")[-1].split("?")[0])
    with session_factory() as s:
        again = s.get(Experiment, new_id)
        assert (again.rerun_of, again.name, again.status) == (
            done,
            "base (re-run)",
            JobStatus.queued,
        )
    page = ui.get(r.headers["location"]).text
    assert f'href="/ui/experiments/{done}" id="rerun-of"' in page and "re-run of #" in page

    r = _post(ui, f"/ui/experiments/{done}/edit", name="renamed", tags="a, b,a",
              notes="lr too high\nsecond line", project="vision")  # fmt: skip
    assert r.status_code == 303 and r.headers["location"].endswith("?done=edited")
    with session_factory() as s:
        exp = s.get(Experiment, done)
        assert (exp.name, exp.tag_names, exp.project) == ("renamed", ["a", "b"], "vision")
        assert exp.notes == "lr too high\nsecond line"
    page = ui.get(f"/ui/experiments/{done}").text
    assert "lr too high" in page and 'id="project">vision' in page
    r = _post(ui, f"/ui/experiments/{done}/edit", name="", tags="", notes="", project="")
    with session_factory() as s:  # empty boxes clear; an empty project keeps it
        exp = s.get(Experiment, done)
        assert (exp.name, exp.tag_names, exp.notes, exp.project) == (None, [], None, "vision")

    assert f'data-id="{done}"' in _list(ui)
    assert _post(ui, f"/ui/experiments/{done}/archive").status_code == 303
    assert f'data-id="{done}"' not in _list(ui) and f'data-id="{new_id}"' in _list(ui)
    shown = _list(ui, "?archived=1")
    assert f'data-id="{done}"' in shown and "archived</span>" in shown and "checked" in shown
    page = ui.get(f"/ui/experiments/{done}").text
    assert 'id="restore"' in page and 'id="archived"' in page and 'id="archive"' not in page
    assert _post(ui, f"/ui/experiments/{done}/restore").status_code == 303
    assert f'data-id="{done}"' in _list(ui)

    projects = _list(ui, "?project=vision")
    assert f'data-id="{done}"' in projects and f'data-id="{new_id}"' not in projects


def test_refusals_show_why_and_change_nothing(ui, admin_id, make_experiment, make_user,
                                             session_factory):  # fmt: skip
    queued = make_experiment(admin_id, status=JobStatus.queued)
    theirs = make_experiment(make_user("ann"), result=sample_result(2))

    r = _post(ui, f"/ui/experiments/{queued}/archive")
    assert r.status_code == 409 and "cancel it first" in r.text
    r = _post(ui, f"/ui/experiments/{queued}/edit", name="n" * 201, tags="", notes="",
              project="")  # fmt: skip
    assert r.status_code == 422 and "name" in r.text
    r = _post(ui, f"/ui/experiments/{queued}/edit", name="x", tags="", notes="")
    assert r.status_code == 422 and "lacks project" in r.text
    r = ui.post(f"/ui/experiments/{theirs}/archive", data={"csrf_token": "forged"},
                follow_redirects=False)  # fmt: skip
    assert r.status_code == 403 and "token" in r.text
    assert _post(ui, "/ui/experiments/999999/rerun").status_code == 404
    with session_factory() as s:
        assert s.get(Experiment, queued).archived_at is None
        assert s.get(Experiment, queued).name is None
        assert s.get(Experiment, theirs).archived_at is None


def test_cancel_a_sweep_from_its_page(ui, session_factory):
    from store.models import User

    with session_factory() as s:
        admin_id = s.query(User.id).filter_by(name="admin").scalar()
    r = ui.post("/ui/sweeps", data={"csrf_token": csrf_of(ui, "/ui/sweeps"), "name": "s",
                                     "base": '{"dataset": "digits"}', "grid": "seed=0,1"},
                follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    sweep_page = r.headers["location"]
    sweep_id = int(sweep_page.rsplit("/", 1)[1])
    assert 'id="cancel-sweep"' in ui.get(sweep_page).text
    r = _post(ui, f"/ui/sweeps/{sweep_id}/cancel")
    assert r.status_code == 303 and r.headers["location"] == sweep_page
    with session_factory() as s:
        points = s.query(Experiment).filter_by(sweep_id=sweep_id, owner_id=admin_id).all()
        assert [p.status for p in points] == [JobStatus.cancelled] * 2
    assert 'id="cancel-sweep"' not in ui.get(sweep_page).text  # nothing left to cancel
    assert _post(ui, "/ui/sweeps/999999/cancel").status_code == 404
