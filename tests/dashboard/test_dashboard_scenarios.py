"""The new-experiment form's scenario fields (heads, hidden widths, joint): shown, sent to
the spec, and their refusals shown next to the field."""

from __future__ import annotations

from sqlalchemy import select

from store.models import Experiment
from tests.fixtures.dashboard import new_form


def test_form_has_the_scenario_fields(ui):
    page = ui.get("/ui/new").text
    assert 'name="heads"' in page and '<option value="multi"' in page
    assert 'name="hidden"' in page and 'name="joint"' in page


def test_form_refusals_are_shown_next_to_the_field(ui, session_factory):
    stream = {"dataset": "digits", "dataset_update": "switch", "splits": "2", "epochs": "2"}
    r = ui.post("/ui/new", data=new_form(ui, **stream, hidden="400,x"))
    assert r.status_code == 422 and 'id="err-hidden"' in r.text and "such as 400,400" in r.text
    r = ui.post("/ui/new", data=new_form(ui, **stream, joint="on", ewc="on"))
    assert r.status_code == 422 and 'id="err-joint"' in r.text and "takes no method" in r.text
    with session_factory() as s:
        assert s.scalar(select(Experiment.id)) is None, "nothing was created"


def test_form_submits_a_task_il_spec(ui, session_factory):
    stream = {"dataset": "digits", "dataset_update": "switch", "splits": "2", "epochs": "2"}
    form = new_form(ui, **stream, heads="multi", hidden="30,20", joint="on")
    assert ui.post("/ui/new", data=form, follow_redirects=False).status_code == 303
    with session_factory() as s:
        spec = s.scalars(select(Experiment.spec)).one()
    assert (spec["heads"], spec["hidden"], spec["joint"]) == ("multi", [30, 20], True)
    assert spec["dataset_update"] == "switch"
    # a post of the form's first version (no heads, no hidden) still takes the defaults
    old = {k: v for k, v in new_form(ui, **stream).items() if k not in ("heads", "hidden")}
    assert ui.post("/ui/new", data=old, follow_redirects=False).status_code == 303
