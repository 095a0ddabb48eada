"""An instance's life: across restarts, suspended, resumed, terminated; its data kept exactly."""
from __future__ import annotations

from decimal import Decimal

import pytest
from engine_helpers import (
    T0,
    complete,
    history,
    incidents,
    instance,
    kinds,
    open_elements,
    status,
    subscriptions,
    task,
    tasks,
    timers,
)

from app.engine import ProcessEngine, clock, state
from app.errors import Conflict, IllegalState, StepFailed
from app.models import TaskStatus

# --- restart safety ---------------------------------------------------------------


def test_a_new_engine_on_the_same_database_continues_the_instance(engine, deploy, db, forms_dir):
    deploy("simple.bpmn")
    iid = engine.start("simple", {"customer": "Ann", "amount": Decimal("19.99")}, "admin")
    complete(engine, iid, "step_one", {"diagnosis": "thermostat"})

    restarted = ProcessEngine(db, forms_dir)  # a new process: empty spec cache, nothing in memory
    assert restarted.specs is not engine.specs
    assert open_elements(db, iid) == ["step_two"]
    data = restarted.task_detail(task(db, iid, "step_two").id)["data"]
    assert (data["customer"], data["diagnosis"]) == ("Ann", "thermostat")

    complete(restarted, iid, "step_two", {"fixed": True})
    detail = restarted.instance_detail(iid)
    assert detail["status"] == "completed"
    assert {k: detail["data"][k] for k in ("customer", "amount", "diagnosis", "fixed")} == \
           {"customer": "Ann", "amount": "19.99", "diagnosis": "thermostat", "fixed": True}


def test_timers_and_messages_survive_a_restart(engine, deploy, db, forms_dir):
    clock.freeze(T0)
    deploy("boundary_timers.bpmn", "msg_catch.bpmn")
    timed = engine.start("timer_escalation", {}, "admin")
    waiting = engine.start("await_payment", {"order_no": "R-1"}, "admin")

    restarted = ProcessEngine(db, forms_dir)
    clock.advance(seconds=3 * 3600)
    assert restarted.fire_due_timers()["fired"] == [timed]
    assert open_elements(db, timed) == ["escalate"]
    assert restarted.correlate("payment_received", {"order_no": "R-1"}, {}).delivered == [waiting]
    assert open_elements(db, waiting) == ["ship"]


# --- Decimal ----------------------------------------------------------------------

def test_decimal_set_by_a_script_survives_persistence(engine, deploy, db, forms_dir):
    deploy("decimal.bpmn")
    iid = engine.start("money", {}, "admin")

    restarted = ProcessEngine(db, forms_dir)
    with db.transaction() as s:
        row = instance(db, iid)
        compiled = restarted.specs.get(s, row.version_id)
        workflow = state.load(compiled.dialect.serializer, row.state, compiled.spec, compiled.subprocess_specs,
                              compiled.script_engine)
    [ready] = [t for t in workflow.get_tasks() if t.task_spec.bpmn_id == "approve_fee" and t.data.get("x")]
    assert type(ready.data["x"]) is Decimal and ready.data["x"] == Decimal("12.30")
    assert str(ready.data["x"]) == "12.30"  # the scale too, not 12.3
    assert restarted.task_detail(task(db, iid, "approve_fee").id)["data"]["x"] == "12.30"

    complete(restarted, iid, "approve_fee")
    data = restarted.instance_detail(iid)["data"]
    assert data["x_is_decimal"] is True  # the script after the reload saw a Decimal, not a float or str
    assert data["doubled"] == "24.60"


def test_decimal_in_form_data_survives_persistence(engine, deploy, db):
    deploy("decimal.bpmn")
    iid = engine.start("money", {}, "admin")
    complete(engine, iid, "approve_fee", {"x": Decimal("0.10")})
    data = engine.instance_detail(iid)["data"]
    assert (data["x_is_decimal"], data["doubled"]) == (True, "0.20")


# --- suspend, resume, terminate -----------------------------------------------------

def test_suspended_instance_refuses_work_until_resumed(engine, deploy, db):
    clock.freeze(T0)
    deploy("boundary_timers.bpmn")
    iid = engine.start("timer_escalation", {}, "admin")
    handle = task(db, iid, "handle_complaint")

    engine.suspend(iid, "admin", "customer on holiday")
    assert status(db, iid) == "suspended"
    with pytest.raises(IllegalState):
        engine.complete(handle.id, "admin", {})
    with pytest.raises(IllegalState):
        engine.claim(handle.id, "admin")
    with pytest.raises(IllegalState):
        engine.suspend(iid, "admin")

    clock.advance(seconds=3 * 3600)
    assert engine.fire_due_timers()["fired"] == []  # a suspended instance's timers wait
    assert open_elements(db, iid) == ["handle_complaint"]
    assert len(timers(db, iid)) == 1

    engine.resume(iid, "admin")
    assert status(db, iid) == "waiting"
    assert engine.fire_due_timers()["fired"] == [iid]  # the overdue timer fires after resuming
    assert open_elements(db, iid) == ["escalate"]
    events = kinds(db, iid)
    assert events.index(("instance_suspended", None)) < events.index(("instance_resumed", None))
    assert history(db, iid, "instance_suspended")[0].detail == {"reason": "customer on holiday"}
    with pytest.raises(IllegalState):
        engine.resume(iid, "admin")


def test_resuming_an_instance_with_an_open_incident_returns_it_to_error(engine, deploy, db):
    deploy("script_error.bpmn")
    iid = engine.start("split_bill", {"total": 10}, "admin")
    with pytest.raises(StepFailed):
        complete(engine, iid, "enter_parties", {"parties": 0})
    engine.suspend(iid, "admin")
    engine.resume(iid, "admin")
    assert status(db, iid) == "error"


def test_terminate_cancels_open_tasks_and_deletes_timers(engine, deploy, db):
    clock.freeze(T0)
    deploy("boundary_timers.bpmn")
    iid = engine.start("timer_escalation", {}, "admin")
    handle = task(db, iid, "handle_complaint")
    assert len(timers(db, iid)) == 1

    engine.terminate(iid, "admin", "duplicate call")

    row = instance(db, iid)
    assert (row.status, row.ended_at) == ("terminated", T0)
    assert tasks(db, iid) == []
    [cancelled] = tasks(db, iid, status=TaskStatus.CANCELLED)
    assert cancelled.id == handle.id
    assert timers(db, iid) == []
    assert history(db, iid, "instance_terminated")[0].detail == {"reason": "duplicate call"}

    clock.advance(seconds=3 * 3600)
    assert engine.fire_due_timers()["fired"] == []
    with pytest.raises(Conflict, match="cancelled"):
        engine.complete(handle.id, "admin", {})
    with pytest.raises(IllegalState):
        engine.terminate(iid, "admin")
    with pytest.raises(IllegalState):
        engine.suspend(iid, "admin")


def test_terminate_a_suspended_instance_drops_its_subscriptions_and_incidents(engine, deploy, db):
    deploy("msg_catch.bpmn", "script_error.bpmn")
    waiting = engine.start("await_payment", {"order_no": "T-1"}, "admin")
    engine.suspend(waiting, "admin")
    engine.terminate(waiting, "admin")
    assert status(db, waiting) == "terminated"
    assert subscriptions(db, waiting) == []
    result = engine.correlate("payment_received", {"order_no": "T-1"}, {})
    assert result.delivered == [] and result.buffered is not None

    failing = engine.start("split_bill", {"total": 10}, "admin")
    with pytest.raises(StepFailed):
        complete(engine, failing, "enter_parties", {"parties": 0})
    engine.terminate(failing, "admin")
    assert [i.status for i in incidents(db, failing)] == ["resolved"]
    assert instance(db, failing).ended_at is not None


def test_a_business_key_given_twice_is_a_conflict(engine, deploy, db):
    from app.errors import Conflict

    deploy("simple.bpmn")
    engine.start("simple", {}, "admin", business_key="WO-2026-000777")
    with pytest.raises(Conflict, match="WO-2026-000777 is already used"):
        engine.start("simple", {}, "admin", business_key="WO-2026-000777")


def test_ticket_numbers_count_up_per_prefix_and_year_and_titles_fall_back_to_the_process(engine, deploy, db):
    """On PostgreSQL the number, the version and the instance row come from one statement that
    formats the key in SQL: it must agree with business_keys.format_key, past six digits too."""
    from sqlalchemy import update

    from app.engine.business_keys import format_key
    from app.models import BusinessKeyCounter

    deploy("simple.bpmn")
    first = instance(db, engine.start("simple", {}, "admin"))
    prefix, year, value = first.business_key.rsplit("-", 2)
    assert first.business_key == format_key(prefix, T0.year, 1) and int(year) == T0.year and value == "000001"
    assert first.title and first.status == "waiting" and first.priority == 50 and first.lock_version == 2
    named = instance(db, engine.start("simple", {}, "admin", title="Leaking pipe, 3rd floor", priority=80))
    assert (named.business_key, named.title, named.priority) == (format_key(prefix, T0.year, 2),
                                                                 "Leaking pipe, 3rd floor", 80)
    assert instance(db, engine.start("simple", {}, "admin", title="")).title == first.title
    assert instance(db, engine.start("simple", {}, "admin", title="x" * 400)).title == "x" * 300
    with db.transaction() as s:
        s.execute(update(BusinessKeyCounter).where(BusinessKeyCounter.prefix == prefix).values(value=999_999))
    big = instance(db, engine.start("simple", {}, "admin"))
    assert big.business_key == format_key(prefix, T0.year, 1_000_000) == f"{prefix}-{T0.year}-1000000"
    assert big.version_id == first.version_id and big.started_by == "admin"
