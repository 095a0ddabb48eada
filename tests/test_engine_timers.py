"""Boundary timers on user tasks: the clock moves by hand, due timers fire when a worker asks."""
from __future__ import annotations

from datetime import timedelta

from engine_helpers import T0, complete, history, kinds, open_elements, status, task, task_data, tasks, timers

from app.engine import clock
from app.models import TaskStatus


def test_timer_row_is_due_when_the_diagram_says(engine, deploy):
    clock.freeze(T0)
    deploy("boundary_timers.bpmn")
    escalation = engine.start("timer_escalation", {}, "admin")
    reminder = engine.start("timer_reminder", {}, "admin")

    [row] = timers(engine.db, escalation)
    assert (row.element_id, row.due_at) == ("too_late", T0 + timedelta(hours=2))
    [row] = timers(engine.db, reminder)
    assert (row.element_id, row.due_at) == ("remind", T0 + timedelta(minutes=30))
    assert engine.instance_detail(escalation)["timers"] == [
        {"element_id": "too_late", "due_at": (T0 + timedelta(hours=2)).isoformat()}]


def test_interrupting_timer_cancels_the_task_and_opens_the_escalation(engine, deploy):
    clock.freeze(T0)
    deploy("boundary_timers.bpmn")
    iid = engine.start("timer_escalation", {}, "admin")
    handle = task(engine.db, iid, "handle_complaint")

    clock.advance(seconds=2 * 3600)
    assert engine.fire_due_timers() == {"fired": [], "failed": [], "skipped": []}
    assert open_elements(engine.db, iid) == ["handle_complaint"]  # due now: fires once the moment has passed
    assert history(engine.db, iid, "timer_fired") == []

    clock.advance(seconds=1)
    assert engine.fire_due_timers()["fired"] == [iid]
    assert open_elements(engine.db, iid) == ["escalate"]
    [cancelled] = tasks(engine.db, iid, status=TaskStatus.CANCELLED)
    assert (cancelled.id, cancelled.element_id) == (handle.id, "handle_complaint")
    assert timers(engine.db, iid) == []
    events = kinds(engine.db, iid)
    assert ("timer_fired", "too_late") in events
    assert ("task_cancelled", "handle_complaint") in events
    assert ("task_created", "escalate") in events

    assert engine.fire_due_timers()["fired"] == []  # a timer fires once
    complete(engine, iid, "escalate")
    assert status(engine.db, iid) == "completed"


def test_completing_the_task_first_removes_its_timer(engine, deploy):
    clock.freeze(T0)
    deploy("boundary_timers.bpmn")
    iid = engine.start("timer_escalation", {}, "admin")
    clock.advance(seconds=600)
    complete(engine, iid, "handle_complaint")

    assert status(engine.db, iid) == "completed"
    assert timers(engine.db, iid) == []
    clock.advance(seconds=3 * 3600)
    assert engine.fire_due_timers()["fired"] == []
    assert history(engine.db, iid, "timer_fired") == []
    assert tasks(engine.db, iid) == []


def test_non_interrupting_timer_runs_the_reminder_and_keeps_the_task_open(engine, deploy):
    clock.freeze(T0)
    deploy("boundary_timers.bpmn")
    iid = engine.start("timer_reminder", {}, "admin")
    repair = task(engine.db, iid, "repair")

    clock.advance(seconds=31 * 60)
    assert engine.fire_due_timers()["fired"] == [iid]

    assert open_elements(engine.db, iid) == ["call_customer", "repair"]
    assert task(engine.db, iid, "repair").id == repair.id  # the same task, still open
    assert tasks(engine.db, iid, status=TaskStatus.CANCELLED) == []
    assert task_data(engine, iid, "call_customer")["reminded"] is True
    assert ("step_completed", "count_reminder") in kinds(engine.db, iid)
    assert timers(engine.db, iid) == []  # a duration fires once

    complete(engine, iid, "repair")
    assert status(engine.db, iid) == "waiting"  # the reminder path is still open
    complete(engine, iid, "call_customer")
    assert status(engine.db, iid) == "completed"


def test_non_interrupting_timer_does_not_fire_after_the_task_is_done(engine, deploy):
    clock.freeze(T0)
    deploy("boundary_timers.bpmn")
    iid = engine.start("timer_reminder", {}, "admin")
    complete(engine, iid, "repair")
    assert status(engine.db, iid) == "completed"
    assert timers(engine.db, iid) == []
    clock.advance(seconds=3600)
    assert engine.fire_due_timers()["fired"] == []
    assert history(engine.db, iid, "task_created")[-1].element_id == "repair"


def test_one_sweep_fires_every_due_timer_and_leaves_the_rest(engine, deploy):
    clock.freeze(T0)
    deploy("boundary_timers.bpmn")
    first = engine.start("timer_escalation", {}, "admin")
    second = engine.start("timer_escalation", {}, "admin")
    clock.advance(seconds=3600)
    late = engine.start("timer_escalation", {}, "admin")

    clock.advance(seconds=3601)  # first and second are due (T0+2h), late is not (T0+3h)
    assert engine.fire_due_timers()["fired"] == [first, second]
    assert open_elements(engine.db, first) == open_elements(engine.db, second) == ["escalate"]
    assert open_elements(engine.db, late) == ["handle_complaint"]
    [row] = timers(engine.db)
    assert (row.instance_id, row.due_at) == (late, T0 + timedelta(hours=3))
