"""Who gets a task (lanes and diagram properties, both dialects) and who may act on it."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from engine_helpers import T0, complete, history, open_elements, status, task, users
from sqlalchemy import select

from app.engine import clock
from app.errors import Conflict, Forbidden
from app.models import ProcessVersion, TaskCandidate, TaskStatus

# --- permissions --------------------------------------------------------------------


@pytest.fixture
def repair(engine, deploy, db):
    """A heater repair waiting at triage (lane "dispatch"); ann dispatches, bob and carl repair."""
    deploy("lanes.bpmn")
    users(db, ann=["dispatch"], bob=["field"], carl=["field"], dora=["dispatch", "field"])
    return engine.start("heater_repair", {}, "admin")


def test_lane_name_is_the_candidate_group(engine, db, repair):
    triage = task(db, repair, "triage")
    assert (triage.candidate_groups, triage.status, triage.assignee) == (["dispatch"], TaskStatus.OPEN, None)
    with db.transaction() as s:
        assert [(c.kind, c.name) for c in s.scalars(select(TaskCandidate).where(TaskCandidate.task_id == triage.id))] \
            == [("group", "dispatch")]


def test_someone_outside_the_lane_may_not_claim_complete_or_receive_the_task(engine, db, repair):
    triage = task(db, repair, "triage")
    with pytest.raises(Forbidden):
        engine.claim(triage.id, "bob")
    with pytest.raises(Forbidden):
        engine.complete(triage.id, "bob", {})
    with pytest.raises(Forbidden):
        engine.assign(triage.id, "bob", "admin")  # not even the admin can give it to a non-candidate
    assert task(db, repair, "triage").status == TaskStatus.OPEN
    assert history(db, repair, "task_claimed") == []


def test_a_candidate_claims_completes_and_the_next_lane_takes_over(engine, db, repair):
    triage = task(db, repair, "triage")
    engine.claim(triage.id, "ann")
    engine.claim(triage.id, "ann")  # claiming one's own task again is harmless
    assert (task(db, repair, "triage").status, task(db, repair, "triage").assignee) == (TaskStatus.CLAIMED, "ann")
    assert [e.actor for e in history(db, repair, "task_claimed")] == ["ann"]

    engine.complete(triage.id, "ann", {"fault": "pilot light"})
    fix = task(db, repair, "repair")
    assert fix.candidate_groups == ["field"]
    with pytest.raises(Forbidden):
        engine.claim(fix.id, "ann")
    engine.complete(fix.id, "bob", {})  # a candidate may complete an unclaimed task directly
    assert status(db, repair) == "completed"


def test_a_claimed_task_cannot_be_taken_by_someone_else(engine, db, repair):
    triage = task(db, repair, "triage")
    engine.claim(triage.id, "ann")

    with pytest.raises(Conflict):
        engine.claim(triage.id, "dora")  # a candidate too, but ann has it
    with pytest.raises(Conflict):
        engine.complete(triage.id, "dora", {})
    with pytest.raises(Forbidden):
        engine.unclaim(triage.id, "dora")
    with pytest.raises(Forbidden):
        engine.assign(triage.id, "dora", "dora")  # only the holder or the admin hands it on
    assert task(db, repair, "triage").assignee == "ann"

    engine.unclaim(triage.id, "ann")
    row = task(db, repair, "triage")
    assert (row.status, row.assignee) == (TaskStatus.OPEN, None)
    with pytest.raises(Conflict):
        engine.unclaim(triage.id, "ann")
    engine.claim(triage.id, "dora")
    engine.complete(triage.id, "dora", {})
    assert task(db, repair, "repair").status == TaskStatus.OPEN


def test_the_holder_may_hand_the_task_to_another_candidate(engine, db, repair):
    complete(engine, repair, "triage", actor="ann")
    fix = task(db, repair, "repair")
    engine.claim(fix.id, "bob")
    engine.assign(fix.id, "carl", "bob")
    row = task(db, repair, "repair")
    assert (row.status, row.assignee, row.claimed_by) == (TaskStatus.CLAIMED, "carl", "bob")
    with pytest.raises(Conflict):
        engine.complete(fix.id, "bob", {})
    engine.complete(fix.id, "carl", {})
    assert [e.detail["assignee"] for e in history(db, repair, "task_assigned")] == ["carl"]


def test_the_admin_may_act_on_every_task(engine, db, repair):
    triage = task(db, repair, "triage")
    engine.claim(triage.id, "ann")
    engine.unclaim(triage.id, "admin")  # release someone else's claim
    engine.assign(triage.id, "ann", "admin")
    engine.complete(triage.id, "admin", {})  # complete a task someone else holds
    done = [e for e in history(db, repair, "task_completed")]
    assert [(e.element_id, e.actor) for e in done] == [("triage", "admin")]

    fix = task(db, repair, "repair")
    engine.claim(fix.id, "admin")  # in no lane, a candidate everywhere
    engine.complete(fix.id, "admin", {})
    assert status(db, repair) == "completed"


# --- assignment properties from the diagram -------------------------------------------

def test_spiffworkflow_properties_set_groups_assignee_due_date_priority_and_form(engine, deploy, db, forms_dir):
    clock.freeze(T0)
    (forms_dir / "bill_review.json").write_text(json.dumps({"fields": [{"name": "note", "type": "text"}]}))
    deploy("assignment.bpmn")
    iid = engine.start("assignment", {"agent": "ann", "hours": 2, "urgency": 9}, "admin", priority=40)

    review = task(db, iid, "review_bill")
    assert review.candidate_groups == ["billing", "supervisors"]  # the property wins over the lane
    assert (review.assignee, review.status) == (None, TaskStatus.OPEN)
    assert review.due_at == T0 + timedelta(hours=4)
    assert review.priority == 80
    assert review.form_key == "bill_review"

    call = task(db, iid, "call_back")
    assert call.candidate_groups == ["dispatch"]  # no property: the lane
    assert (call.assignee, call.status, call.claimed_by) == ("ann", TaskStatus.CLAIMED, "system")
    assert call.due_at == T0 + timedelta(hours=2)
    assert call.priority == 90

    with db.transaction() as s:
        version = s.scalar(select(ProcessVersion))
        assert "forms/bill_review.json" in version.files  # the form travels with the version
    assert open_elements(db, iid) == ["call_back", "review_bill"]


def test_assignment_expressions_read_the_task_data(engine, deploy, db, forms_dir):
    clock.freeze(T0)
    (forms_dir / "bill_review.json").write_text(json.dumps({"fields": [{"name": "note", "type": "text"}]}))
    deploy("assignment.bpmn")
    iid = engine.start("assignment", {"agent": "bob", "hours": 24, "urgency": 1}, "admin")
    call = task(db, iid, "call_back")
    assert (call.assignee, call.due_at, call.priority) == ("bob", T0 + timedelta(hours=24), 10)


def test_camunda_attributes_set_groups_users_assignee_due_date_and_priority(engine, deploy, db):
    clock.freeze(T0)
    deploy("camunda_assignment.bpmn")
    with db.transaction() as s:
        assert s.scalar(select(ProcessVersion.dialect)) == "camunda"
    iid = engine.start("camunda_assignment", {}, "admin")

    visit = task(db, iid, "visit")
    assert (visit.assignee, visit.status) == ("bob", TaskStatus.CLAIMED)
    assert visit.due_at == T0 + timedelta(hours=2)
    assert visit.priority == 70

    quote = task(db, iid, "quote")
    assert quote.candidate_groups == ["field", "sales"]
    assert quote.candidate_users == ["carol"]
    assert (quote.assignee, quote.status, quote.due_at, quote.priority) == (None, TaskStatus.OPEN, None, 50)

    users(db, bob=["field"], carol=[], erin=["sales"], fred=["billing"])
    with pytest.raises(Forbidden):
        engine.claim(quote.id, "fred")
    engine.claim(quote.id, "carol")  # a candidate user, in none of the groups
    with pytest.raises(Conflict):
        engine.complete(visit.id, "erin", {})
    engine.complete(visit.id, "bob", {})
    engine.complete(quote.id, "carol", {})
    assert status(db, iid) == "completed"


# --- groups and users chosen by the process data ------------------------------------------

def test_candidate_groups_and_users_may_come_from_the_data(engine, deploy, db):
    """A routing table picks the department; the one task goes to that department's group."""
    deploy("routed_task.bpmn")
    users(db, chen=["water-dept"], wu=["road-maintenance"], ivy=[])
    iid = engine.start("routed_task", {"department": "water-dept", "helpers": ["ivy", "ivy"]}, "admin")
    only_group = task(db, engine.start("routed_task", {"department": ["road-maintenance"], "helpers": []}, "admin"),
                      "handle")
    assert (only_group.candidate_groups, only_group.candidate_users) == (["road-maintenance"], [])
    row = task(db, iid, "handle")
    assert (row.candidate_groups, row.candidate_users) == (["water-dept"], ["ivy"])
    with pytest.raises(Forbidden):
        engine.claim(row.id, "wu")
    engine.claim(row.id, "chen")


@pytest.mark.parametrize("data, problem", [
    ({"department": "", "helpers": []}, "candidate groups expression '=department' gave ''"),
    ({"department": ["water", 3], "helpers": []}, "gave ['water', 3]"),
    ({"helpers": []}, "candidate groups expression '=department' failed"),
    ({"department": [], "helpers": []}, "came out empty: nobody could work on it"),
])
def test_a_group_expression_that_names_nobody_is_an_incident(engine, deploy, db, data, problem):
    from app.errors import StepFailed

    deploy("routed_task.bpmn")
    with pytest.raises(StepFailed, match=problem.replace("[", r"\[").replace("]", r"\]")):
        engine.start("routed_task", data, "admin")


def test_a_group_expression_that_does_not_compile_is_refused_at_deploy(engine, tmp_path):
    from conftest import bpmn_path

    bad = tmp_path / "routed_task.bpmn"
    bad.write_text(bpmn_path("routed_task.bpmn").read_text().replace('value="=department"', 'value="=depart ment"'))
    library = engine.validate([bad])
    assert any(p.element_id == "handle" and "candidate_groups expression does not compile" in p.message
               for p in library.problems), [str(p) for p in library.problems]
