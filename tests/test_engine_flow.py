"""Routing through a process: gateways, call activities, multi-instance tasks and DMN decisions."""
from __future__ import annotations

import pytest
from engine_helpers import complete, history, kinds, open_elements, status, task, task_data, tasks

from app.errors import StepFailed
from app.models import TaskStatus

# --- exclusive gateway ------------------------------------------------------------


@pytest.mark.parametrize(("priority", "expected"), [
    ("urgent", "dispatch_now"),
    ("normal", "schedule_visit"),
    ("low", "review_backlog"),  # no condition holds: the default flow
])
def test_exclusive_gateway_takes_the_matching_flow_or_the_default(engine, deploy, priority, expected):
    deploy("exclusive.bpmn")
    iid = engine.start("route_exclusive", {"priority": priority}, "admin")

    assert open_elements(engine.db, iid) == [expected]
    assert status(engine.db, iid) == "waiting"
    if expected == "review_backlog":
        assert task_data(engine, iid, expected)["routed"] == "backlog"
        assert ("step_completed", "mark_backlog") in kinds(engine.db, iid)
    complete(engine, iid, expected)
    assert status(engine.db, iid) == "completed"
    assert open_elements(engine.db, iid) == []
    assert [e.element_id for e in history(engine.db, iid, "task_completed")] == [expected]


def test_exclusive_gateway_without_a_matching_value_fails_visibly(engine, deploy):
    """A condition reading a missing variable is a failed step, not a silent default."""
    deploy("exclusive.bpmn")
    with pytest.raises(StepFailed):
        engine.start("route_exclusive", {}, "admin")


# --- parallel gateway -------------------------------------------------------------

def test_parallel_split_opens_both_tasks_and_the_join_waits_for_both(engine, deploy):
    deploy("parallel.bpmn")
    iid = engine.start("route_parallel", {}, "admin")
    assert open_elements(engine.db, iid) == ["book_technician", "order_parts"]

    complete(engine, iid, "order_parts", {"parts": "valve"})
    assert open_elements(engine.db, iid) == ["book_technician"]  # the join still waits

    complete(engine, iid, "book_technician", {"technician": "bob"})
    assert open_elements(engine.db, iid) == ["confirm"]
    data = task_data(engine, iid, "confirm")
    assert data["parts"] == "valve" and data["technician"] == "bob"  # both branches' data arrive

    complete(engine, iid, "confirm")
    assert status(engine.db, iid) == "completed"
    assert [t.status for t in tasks(engine.db, iid, status=None)] == [TaskStatus.COMPLETED] * 3


# --- inclusive gateway ------------------------------------------------------------

def test_inclusive_gateway_runs_every_true_branch_and_joins_them(engine, deploy):
    deploy("inclusive.bpmn")
    iid = engine.start("route_inclusive", {"needs_parts": True, "needs_visit": True}, "admin")
    assert open_elements(engine.db, iid) == ["order_parts", "plan_visit"]

    complete(engine, iid, "plan_visit")
    assert open_elements(engine.db, iid) == ["order_parts"]  # the merge waits for the other branch
    complete(engine, iid, "order_parts")
    assert open_elements(engine.db, iid) == ["wrap_up"]
    complete(engine, iid, "wrap_up")
    assert status(engine.db, iid) == "completed"


def test_inclusive_gateway_with_one_true_branch_does_not_wait_for_the_others(engine, deploy):
    deploy("inclusive.bpmn")
    iid = engine.start("route_inclusive", {"needs_parts": False, "needs_visit": True}, "admin")
    assert open_elements(engine.db, iid) == ["plan_visit"]
    complete(engine, iid, "plan_visit")
    assert open_elements(engine.db, iid) == ["wrap_up"]


def test_inclusive_gateway_takes_the_default_when_nothing_holds(engine, deploy):
    deploy("inclusive.bpmn")
    iid = engine.start("route_inclusive", {"needs_parts": False, "needs_visit": False}, "admin")
    assert open_elements(engine.db, iid) == ["wrap_up"]
    assert task_data(engine, iid, "wrap_up")["note"] == "nothing needed"


# --- call activity ----------------------------------------------------------------

def test_call_activity_runs_the_called_process_inside_the_parent_instance(engine, deploy):
    results = deploy("call_parent.bpmn", "call_child.bpmn")
    assert {r.key for r in results} == {"call_parent", "call_child"}
    iid = engine.start("call_parent", {"number": 7}, "admin")

    inspect = task(engine.db, iid, "inspect_site")  # the called process's task, on the parent instance
    assert inspect.instance_id == iid
    assert inspect.candidate_groups == ["field"]  # the lane in the called process's file
    assert task_data(engine, iid, "inspect_site")["ticket"] == "T-7"  # parent data went in

    complete(engine, iid, "inspect_site", {"finding": "valve stuck"})
    assert open_elements(engine.db, iid) == ["close_ticket"]
    assert task_data(engine, iid, "close_ticket")["summary"] == "T-7: valve stuck"  # child data came back

    complete(engine, iid, "close_ticket")
    detail = engine.instance_detail(iid)
    assert detail["status"] == "completed"
    assert detail["data"]["summary"] == "T-7: valve stuck"
    assert ("step_completed", "summarize") in kinds(engine.db, iid)


# --- multi-instance ---------------------------------------------------------------

def test_parallel_multi_instance_task_opens_one_task_per_item(engine, deploy):
    deploy("multi_instance.bpmn")
    sites = ["north", "south", "east"]
    iid = engine.start("inspect_sites", {"sites": sites}, "admin")

    rows = tasks(engine.db, iid)
    assert [r.element_id for r in rows] == ["inspect"] * 3
    assert len({r.spiff_task_id for r in rows}) == 3
    assert sorted(engine.task_detail(r.id)["data"]["site"] for r in rows) == sorted(sites)

    for n, row in enumerate(rows):
        site = engine.task_detail(row.id)["data"]["site"]
        engine.complete(row.id, "admin", {"report": f"{site} ok"})
        if n < 2:
            assert status(engine.db, iid) == "waiting"
            assert len(tasks(engine.db, iid)) == 2 - n
            # The ticket's data is not one instance's: its item and answer stay inside it.
            data = engine.instance_detail(iid)["data"]
            assert "site" not in data and "report" not in data and data["sites"] == sites

    detail = engine.instance_detail(iid)
    assert detail["status"] == "completed"
    assert sorted(detail["data"]["reports"]) == ["east ok", "north ok", "south ok"]
    assert detail["data"]["report_count"] == 3
    assert len(history(engine.db, iid, "task_completed")) == 3


# --- DMN --------------------------------------------------------------------------

@pytest.mark.parametrize(("category", "team", "expected"), [
    ("gas_leak", "emergency", "send_emergency"),
    ("broken_heater", "field", "send_technician"),
    ("billing", "phone", "call_back"),  # the catch-all rule ("-")
])
def test_business_rule_task_decides_the_route(engine, deploy, category, team, expected):
    deploy("dmn_routing.bpmn", "routing.dmn")
    iid = engine.start("dmn_routing", {"category": category}, "admin")
    assert open_elements(engine.db, iid) == [expected]
    assert task_data(engine, iid, expected)["team"] == team
    assert ("step_completed", "decide_team") in kinds(engine.db, iid)


def test_a_step_failing_inside_a_call_activity_names_its_element(engine, deploy):
    from app.errors import StepFailed

    deploy("call_parent.bpmn", "call_child.bpmn")
    iid = engine.start("call_parent", {"number": 7}, "admin")
    with pytest.raises(StepFailed) as failed:
        complete(engine, iid, "inspect_site", {"finding": 5})  # "T-7: " + 5 fails in the child's script
    assert failed.value.element_id == "summarize"
    [incident] = engine.instance_detail(iid)["incidents"]
    assert incident["element_id"] == "summarize"
