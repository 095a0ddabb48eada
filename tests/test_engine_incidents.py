"""Failing scripts and services: nothing half-written, an incident to see, a retry that moves on."""
from __future__ import annotations

import pytest
from conftest import bpmn_path
from engine_helpers import complete, count, history, incidents, instance, kinds, open_elements, status, task, tasks

from app.errors import IllegalState, LibraryInvalid, StepFailed
from app.models import InstanceEvent, ProcessInstance, ProcessModel
from app.services import registry

CRM_CALLS: list[str] = []
CRM_DOWN = {"failures_left": 0}


@registry.operation("test.flaky_crm")
def flaky_crm(phone: str) -> dict:
    """Test-only CRM lookup that fails while CRM_DOWN says so."""
    CRM_CALLS.append(phone)
    if CRM_DOWN["failures_left"] > 0:
        CRM_DOWN["failures_left"] -= 1
        raise ConnectionError("CRM unreachable")
    return {"customer": "Ann Lee", "phone": phone}


@pytest.fixture(autouse=True)
def _crm():
    CRM_CALLS.clear()
    CRM_DOWN["failures_left"] = 0
    yield
    CRM_DOWN["failures_left"] = 0


def _snapshot(db, iid: int):
    """An instance's workflow state, its task rows and its history (without incident notes)."""
    return (instance(db, iid).state,
            [(t.id, t.element_id, t.status, t.assignee, t.completed_by) for t in tasks(db, iid, status=None)],
            [(e.kind, e.element_id) for e in history(db, iid) if e.kind != "incident"])


def test_failing_script_rolls_back_the_completion_and_opens_an_incident(engine, deploy, db):
    deploy("script_error.bpmn")
    iid = engine.start("split_bill", {"total": 90}, "admin")
    enter = task(db, iid, "enter_parties")
    before = _snapshot(db, iid)

    with pytest.raises(StepFailed) as failed:
        engine.complete(enter.id, "admin", {"parties": 0})

    assert failed.value.element_id == "compute_share"
    assert "division by zero" in failed.value.message
    # The task is still open, no new task, no task_completed or step events, the same workflow state:
    assert _snapshot(db, iid) == before
    assert open_elements(db, iid) == ["enter_parties"]
    assert status(db, iid) == "error"

    [incident] = incidents(db, iid)
    assert (incident.id, incident.element_id, incident.status) == (failed.value.incident_id, "compute_share", "open")
    assert "division by zero" in incident.error
    assert incident.action["name"] == "complete" and incident.action["task_id"] == enter.id
    assert ("incident", "compute_share") in kinds(db, iid)
    detail = engine.instance_detail(iid)
    assert [(i["element_id"], i["status"]) for i in detail["incidents"]] == [("compute_share", "open")]


def test_completing_again_with_good_data_moves_on_and_resolves_the_incident(engine, deploy, db):
    deploy("script_error.bpmn")
    iid = engine.start("split_bill", {"total": 90}, "admin")
    enter = task(db, iid, "enter_parties")
    with pytest.raises(StepFailed):
        engine.complete(enter.id, "admin", {"parties": 0})
    with pytest.raises(StepFailed):
        engine.complete(enter.id, "admin", {"parties": 0})
    [incident] = incidents(db, iid)
    assert incident.attempts == 2  # the same failure counts again, no second incident

    engine.complete(enter.id, "admin", {"parties": 3})

    assert open_elements(db, iid) == ["send_bills"]
    assert engine.task_detail(task(db, iid, "send_bills").id)["data"]["share"] == 30
    [incident] = incidents(db, iid)  # nothing is left to retry: the incident is over
    assert (incident.status, incident.resolved_by) == ("resolved", "admin")
    assert status(db, iid) == "waiting"
    assert ("incident_resolved", "compute_share") in kinds(db, iid)
    with pytest.raises(IllegalState):
        engine.retry_incident(incident.id, "admin")


def test_failing_script_at_start_leaves_no_instance(engine, deploy, db):
    deploy("script_error.bpmn")
    with pytest.raises(StepFailed) as failed:
        engine.start("start_fails", {"customer_id": 7}, "admin")

    assert failed.value.element_id == "look_up_customer"
    assert count(db, ProcessInstance) == 0
    assert count(db, InstanceEvent) == 0
    [incident] = incidents(db)
    assert (incident.instance_id, incident.process_key, incident.element_id) == (None, "start_fails",
                                                                                 "look_up_customer")
    assert "customers" in incident.error
    assert incident.action["name"] == "start"


def test_retry_of_a_failed_service_call_resolves_the_incident_and_moves_on(engine, deploy, db):
    deploy("service_flaky.bpmn")
    iid = engine.start("crm_lookup", {"phone": "555-0100"}, "admin")
    take_call = task(db, iid, "take_call")
    CRM_DOWN["failures_left"] = 1

    with pytest.raises(StepFailed) as failed:
        engine.complete(take_call.id, "admin", {"note": "caller asks for a refund"})

    assert failed.value.element_id == "query_crm"
    assert open_elements(db, iid) == ["take_call"]
    assert status(db, iid) == "error"
    [incident] = incidents(db, iid)
    assert "CRM unreachable" in incident.error

    result = engine.retry_incident(incident.id, "admin")

    assert result == {"incident_id": incident.id, "instance_id": iid}
    assert CRM_CALLS == ["555-0100", "555-0100"]
    assert open_elements(db, iid) == ["confirm_caller"]
    assert status(db, iid) == "waiting"
    [incident] = incidents(db, iid)
    assert (incident.status, incident.resolved_by) == ("resolved", "admin")
    [done] = tasks(db, iid, status="completed")
    assert (done.id, done.completed_by) == (take_call.id, "admin")
    data = engine.task_detail(task(db, iid, "confirm_caller").id)["data"]
    assert data["crm"] == {"customer": "Ann Lee", "phone": "555-0100"}
    assert data["note"] == "caller asks for a refund"  # the form data of the failed completion
    events = kinds(db, iid)
    assert events.count(("task_completed", "take_call")) == 1
    assert ("incident_resolved", "query_crm") in events

    with pytest.raises(IllegalState):
        engine.retry_incident(incident.id, "admin")
    complete(engine, iid, "confirm_caller")
    assert status(db, iid) == "completed"


def test_retry_that_fails_again_keeps_one_open_incident(engine, deploy, db):
    deploy("service_flaky.bpmn")
    iid = engine.start("crm_lookup", {"phone": "555-0199"}, "admin")
    CRM_DOWN["failures_left"] = 2
    with pytest.raises(StepFailed):
        complete(engine, iid, "take_call")
    [incident] = incidents(db, iid)

    with pytest.raises(StepFailed):
        engine.retry_incident(incident.id, "admin")
    [incident] = incidents(db, iid)
    assert (incident.status, incident.attempts) == ("open", 2)
    assert open_elements(db, iid) == ["take_call"]

    engine.retry_incident(incident.id, "admin")
    assert open_elements(db, iid) == ["confirm_caller"]
    assert [i.status for i in incidents(db, iid)] == ["resolved"]


def test_retry_of_a_failed_start_starts_the_fixed_version(engine, deploy, db, tmp_path):
    deploy("script_error.bpmn")
    with pytest.raises(StepFailed) as failed:
        engine.start("start_fails", {"customer_id": 7}, "admin")

    fixed = tmp_path / "script_error.bpmn"  # the designer fixes the script and deploys again
    fixed.write_text(bpmn_path("script_error.bpmn").read_text().replace(
        "customers[customer_id]", "'Customer ' + str(customer_id)"))
    [version] = [r for r in engine.deploy([fixed])[0] if r.key == "start_fails"]
    assert (version.version, version.created) == (2, True)

    result = engine.retry_incident(failed.value.incident_id, "admin")

    iid = result["instance_id"]
    assert open_elements(db, iid) == ["greet"]
    assert engine.task_detail(task(db, iid, "greet").id)["data"]["customer_name"] == "Customer 7"
    assert [(i.status, i.resolved_by) for i in incidents(db)] == [("resolved", "admin")]


def test_service_task_with_an_unknown_operation_is_refused_at_deploy(engine, db):
    with pytest.raises(LibraryInvalid) as refused:
        engine.deploy([bpmn_path("service_unknown.bpmn")])

    [problem] = refused.value.problems
    assert (problem.file, problem.element_id) == ("service_unknown.bpmn", "query_crm")
    assert "crm.no_such_operation" in problem.message
    assert count(db, ProcessModel) == 0
