"""Escalation of late tasks end to end: SLA boundary timers call bpmn/escalation.bpmn, which
escalates the calling ticket's human_task rows (task.escalate) and tells the supervisors.

The clock is frozen and moved by hand; timers fire when the test asks, as a worker would.
tests/data/bpmn/escalating_reminder.bpmn: a non-interrupting cycle timer (every 2 hours, twice)
on `repair`; escalating_reassign.bpmn: an interrupting 1-hour timer on `handle_complaint` that
hands it to the supervisors and leads back into it.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from engine_helpers import T0, history, incidents, instance, status, task, tasks, timers
from sqlalchemy import select
from support import settings_for

from app import create_app
from app import hotline as hotline_app
from app.engine import clock, queries
from app.errors import Forbidden, StepFailed
from app.models import HumanTask, TaskCandidate, TaskStatus
from app.models.notification import Notification
from app.services import escalation, identity, registry

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "bpmn"


@pytest.fixture
def hotline(engine):
    with engine.db.transaction() as s:
        identity.ensure_user(s, "li.na", groups=["hotline"])
        identity.ensure_user(s, "wang.wei", groups=["hotline"])
        identity.ensure_user(s, "zhang.min", groups=["hotline-supervisors"])
    engine.deploy([DATA / "escalating_reminder.bpmn", DATA / "escalating_reassign.bpmn",
                   ROOT / "bpmn" / "escalation.bpmn"])
    clock.freeze(T0)
    return engine


def breach(engine, hours: float) -> list[int]:
    """Let ``hours`` pass (and the second in which a due timer fires); the instances whose timers fired."""
    clock.advance(seconds=hours * 3600 + 1)
    return engine.fire_due_timers()["fired"]


def escalations(db, iid: int) -> list[dict]:
    return [{"element": e.element_id, **e.detail} for e in history(db, iid, "task_escalated")]


def notes_to(db, username: str) -> list[Notification]:
    with db.transaction() as s:
        return list(s.scalars(select(Notification).where(Notification.username == username)
                              .order_by(Notification.id)))


def inbox(db, user: str) -> list[dict]:
    with db.transaction() as s:
        return queries.tasks(s, user=user)


def group_candidates(db, task_id: int) -> list[str]:
    with db.transaction() as s:
        return sorted(s.scalars(select(TaskCandidate.name).where(TaskCandidate.task_id == task_id,
                                                                 TaskCandidate.kind == "group")))


# --- non-interrupting: remind and raise priority ---------------------------------------------

def test_a_breach_escalates_the_late_task_in_place_and_the_history_says_so(hotline):
    iid = hotline.start("escalating_reminder", {}, "admin")
    repair = task(hotline.db, iid, "repair")
    assert (repair.priority, repair.escalation_level, repair.overdue) == (50, 0, False)
    assert repair.due_at == T0 + timedelta(hours=2)
    hotline.claim(repair.id, "li.na")

    clock.advance(seconds=2 * 3600)
    assert hotline.fire_due_timers()["fired"] == []  # due, not yet past
    assert task(hotline.db, iid, "repair").escalation_level == 0

    assert breach(hotline, 0) == [iid]
    row = task(hotline.db, iid, "repair")
    assert row.id == repair.id  # the same task, still with the agent who holds it
    assert (row.status, row.assignee, row.candidate_groups) == (TaskStatus.CLAIMED, "li.na", ["hotline"])
    assert (row.escalation_level, row.priority, row.overdue) == (1, 51, True)
    assert row.due_at == T0 + timedelta(hours=2)  # no new deadline asked for
    [event] = escalations(hotline.db, iid)
    assert event == {"element": "repair", "task_id": repair.id, "title": "Repair the water pipe",
                     "level": 1, "previous_level": 0, "priority": 51, "previous_priority": 50,
                     "groups": ["hotline"], "previous_groups": ["hotline"],
                     "due_at": (T0 + timedelta(hours=2)).isoformat(),
                     "previous_due_at": (T0 + timedelta(hours=2)).isoformat(),
                     "overdue": True, "released_from": None}
    assert status(hotline.db, iid) == "waiting"


def test_a_second_breach_escalates_one_level_higher_and_the_cycle_then_stops(hotline):
    iid = hotline.start("escalating_reminder", {}, "admin")
    assert breach(hotline, 2) == [iid]
    [timer] = timers(hotline.db, iid)
    assert timer.due_at == T0 + timedelta(hours=4)  # the cycle timer waits for its second breach

    assert breach(hotline, 2) == [iid]
    row = task(hotline.db, iid, "repair")
    assert (row.escalation_level, row.priority, row.overdue) == (2, 52, True)
    assert [(e["previous_level"], e["level"]) for e in escalations(hotline.db, iid)] == [(0, 1), (1, 2)]

    assert timers(hotline.db, iid) == []  # R2: two breaches, then no more
    assert breach(hotline, 8) == []
    assert task(hotline.db, iid, "repair").escalation_level == 2


def test_the_supervisors_are_told_at_each_breach_in_the_tickets_language(hotline):
    zh = hotline.start("escalating_reminder", {}, "admin")
    en = hotline.start("escalating_reminder", {"language": "en"}, "admin")
    zh_key, en_key = instance(hotline.db, zh).business_key, instance(hotline.db, en).business_key
    breach(hotline, 2)
    breach(hotline, 2)

    texts = [n.text for n in notes_to(hotline.db, "zhang.min")]
    assert texts == [f"超时升级（第1级）：工单 {zh_key} 中 hotline 组的任务已超时，请督促处理。",
                     f"Escalation level 1: ticket {en_key} has a late task of group hotline; please follow it up.",
                     f"超时升级（第2级）：工单 {zh_key} 中 hotline 组的任务已超时，请督促处理。",
                     f"Escalation level 2: ticket {en_key} has a late task of group hotline; please follow it up."]
    assert notes_to(hotline.db, "li.na") == []  # the agents are not the supervisors


def test_a_task_completed_before_its_sla_escalates_nothing(hotline):
    iid = hotline.start("escalating_reminder", {}, "admin")
    repair = task(hotline.db, iid, "repair")
    clock.advance(seconds=3600)
    hotline.complete(repair.id, "li.na", {})

    assert status(hotline.db, iid) == "completed"
    assert timers(hotline.db, iid) == []
    assert breach(hotline, 5) == []
    assert escalations(hotline.db, iid) == []
    [done] = tasks(hotline.db, iid, status=TaskStatus.COMPLETED)
    assert (done.escalation_level, done.priority, done.overdue) == (0, 50, False)
    assert notes_to(hotline.db, "zhang.min") == []


def test_an_escalated_task_comes_first_in_the_inbox_and_shows_it_is_late(hotline):
    calm = hotline.start("escalating_reminder", {}, "admin")
    clock.advance(seconds=1800)
    late = hotline.start("escalating_reminder", {}, "admin")  # later due, would come second
    breach(hotline, 2 - 0.5)  # only the first one's SLA has passed
    calm_task, late_task = task(hotline.db, calm, "repair"), task(hotline.db, late, "repair")
    assert calm_task.escalation_level == 1 and late_task.escalation_level == 0

    with hotline.db.transaction() as s:  # make the not-escalated one the more urgent by priority
        s.get(HumanTask, late_task.id).priority = 60
    rows = inbox(hotline.db, "li.na")
    assert [r["id"] for r in rows] == [late_task.id, calm_task.id]  # priority first

    with hotline.db.transaction() as s:
        s.get(HumanTask, late_task.id).priority = 51
    rows = inbox(hotline.db, "li.na")
    assert [r["id"] for r in rows] == [calm_task.id, late_task.id]  # same priority: earlier due first
    assert [(r["overdue"], r["escalation_level"]) for r in rows] == [(True, 1), (False, 0)]

    clock.advance(seconds=3600)  # past the second task's due time; its timer has not fired yet
    late_row = next(r for r in inbox(hotline.db, "li.na") if r["id"] == late_task.id)
    assert (late_row["overdue"], late_row["escalation_level"]) == (True, 0)  # late by the clock alone
    assert hotline.task_detail(calm_task.id)["overdue"] is True


def test_a_new_due_time_can_come_with_the_escalation(hotline):
    iid = hotline.start("escalating_reminder", {"escalation_due_in": "PT4H"}, "admin")
    breach(hotline, 2)
    fired_at = T0 + timedelta(hours=2, seconds=1)
    row = task(hotline.db, iid, "repair")
    assert row.due_at == fired_at + timedelta(hours=4)
    [event] = escalations(hotline.db, iid)
    assert (event["previous_due_at"], event["due_at"]) == ((T0 + timedelta(hours=2)).isoformat(),
                                                           (fired_at + timedelta(hours=4)).isoformat())


def test_only_the_named_elements_tasks_are_escalated(hotline):
    iid = hotline.start("escalating_reminder", {"late_element": "some_other_task"}, "admin")
    assert breach(hotline, 2) == [iid]
    row = task(hotline.db, iid, "repair")
    assert (row.escalation_level, row.priority, row.overdue) == (0, 50, False)
    assert escalations(hotline.db, iid) == []
    assert len(notes_to(hotline.db, "zhang.min")) == 1  # the supervisors still hear of the breach


def test_a_non_interrupting_reassignment_releases_the_claimed_task_to_the_supervisors(hotline):
    iid = hotline.start("escalating_reminder", {"reassign": True}, "admin")
    repair = task(hotline.db, iid, "repair")
    hotline.claim(repair.id, "li.na")
    assert breach(hotline, 2) == [iid]

    row = task(hotline.db, iid, "repair")
    assert row.id == repair.id
    assert (row.status, row.assignee, row.claimed_by, row.candidate_groups) == (
        TaskStatus.OPEN, None, None, ["hotline-supervisors"])
    assert group_candidates(hotline.db, row.id) == ["hotline-supervisors"]
    [event] = escalations(hotline.db, iid)
    assert (event["released_from"], event["previous_groups"], event["groups"]) == (
        "li.na", ["hotline"], ["hotline-supervisors"])
    assert repair.id not in [r["id"] for r in inbox(hotline.db, "li.na")]
    assert repair.id in [r["id"] for r in inbox(hotline.db, "zhang.min")]
    with pytest.raises(Forbidden):
        hotline.claim(repair.id, "li.na")
    hotline.claim(repair.id, "zhang.min")
    hotline.complete(repair.id, "zhang.min", {})
    assert status(hotline.db, iid) == "completed"


# --- interrupting: reassign to the supervisor group -----------------------------------------

def test_an_interrupting_breach_reopens_the_task_for_the_supervisors(hotline):
    iid = hotline.start("escalating_reassign", {}, "admin")
    first = task(hotline.db, iid, "handle_complaint")
    hotline.claim(first.id, "li.na")

    assert breach(hotline, 1) == [iid]
    [cancelled] = tasks(hotline.db, iid, status=TaskStatus.CANCELLED)
    assert cancelled.id == first.id
    assert (cancelled.escalation_level, cancelled.overdue) == (0, False)  # the timer took it away first
    reopened = task(hotline.db, iid, "handle_complaint")
    assert reopened.id != first.id
    assert (reopened.status, reopened.assignee, reopened.candidate_groups) == (
        TaskStatus.OPEN, None, ["hotline-supervisors"])
    assert group_candidates(hotline.db, reopened.id) == ["hotline-supervisors"]
    assert (reopened.escalation_level, reopened.priority, reopened.overdue) == (1, 51, True)
    fired_at = T0 + timedelta(hours=1, seconds=1)
    assert reopened.due_at == fired_at + timedelta(hours=1)  # its own due date, from the diagram

    kinds = [(e.kind, e.detail.get("task_id")) for e in history(hotline.db, iid)
             if e.kind in ("task_cancelled", "task_created", "task_escalated")]
    assert kinds[-3:] == [("task_cancelled", first.id), ("task_created", reopened.id),
                          ("task_escalated", reopened.id)]
    assert [r["id"] for r in inbox(hotline.db, "li.na")] == []
    assert [r["id"] for r in inbox(hotline.db, "zhang.min")] == [reopened.id]
    assert hotline.instance_detail(iid)["data"]["escalation_level"] == 1  # the call activity's output
    [note] = notes_to(hotline.db, "zhang.min")
    key = instance(hotline.db, iid).business_key
    assert note.text == f"超时升级（第1级）：工单 {key} 中 hotline 组的任务已超时，已转交主管处理。"


def test_a_second_interrupting_breach_goes_one_level_higher(hotline):
    iid = hotline.start("escalating_reassign", {}, "admin")
    breach(hotline, 1)
    hotline.claim(task(hotline.db, iid, "handle_complaint").id, "zhang.min")
    breach(hotline, 1)

    row = task(hotline.db, iid, "handle_complaint")
    assert (row.escalation_level, row.priority, row.candidate_groups, row.assignee) == (
        2, 52, ["hotline-supervisors"], None)
    assert [e["level"] for e in escalations(hotline.db, iid)] == [1, 2]
    assert hotline.instance_detail(iid)["data"]["escalation_level"] == 2
    assert len(notes_to(hotline.db, "zhang.min")) == 2
    hotline.claim(row.id, "zhang.min")
    hotline.complete(row.id, "zhang.min", {})
    assert status(hotline.db, iid) == "completed"


def test_a_failed_escalation_changes_no_task_and_a_retry_finishes_it(hotline):
    with hotline.db.transaction() as s:
        identity.ensure_user(s, "chen.jie", groups=["water-dept"])
    # water-dept has no supervisor group, and there is no 'supervisors' group to fall back on
    iid = hotline.start("escalating_reminder", {"late_group": "water-dept", "reassign": True}, "admin")
    repair = task(hotline.db, iid, "repair")
    hotline.claim(repair.id, "li.na")
    clock.advance(seconds=2 * 3600 + 1)

    result = hotline.fire_due_timers()
    assert result["fired"] == [] and len(result["failed"]) == 1
    assert "nobody supervises group 'water-dept'" in result["failed"][0]["error"]
    row = task(hotline.db, iid, "repair")
    assert (row.escalation_level, row.priority, row.overdue) == (0, 50, False)
    assert (row.candidate_groups, row.assignee) == (["hotline"], "li.na")
    assert escalations(hotline.db, iid) == []
    [incident] = incidents(hotline.db, iid)

    with hotline.db.transaction() as s:
        identity.ensure_group(s, "supervisors")
    hotline.retry_incident(incident.id, "admin")
    row = task(hotline.db, iid, "repair")
    assert (row.escalation_level, row.overdue, row.candidate_groups, row.assignee) == (1, True, ["supervisors"], None)
    assert [e["released_from"] for e in escalations(hotline.db, iid)] == ["li.na"]


def test_tasks_list_shows_the_late_task_first_with_its_level(db, tmp_path, monkeypatch):
    app = create_app(settings_for(tmp_path, monkeypatch, database_url=db.url))
    runner = app.test_cli_runner()

    def run(*args: str) -> str:
        result = runner.invoke(args=list(args))
        assert result.exit_code == 0, result.output
        return result.stdout

    try:
        run("users", "create", "li.na", "--group", "hotline")
        run("users", "create", "zhang.min", "--group", "hotline-supervisors")
        run("bpmn", "deploy", str(DATA / "escalating_reminder.bpmn"), str(ROOT / "bpmn" / "escalation.bpmn"))
        engine = hotline_app(app).engine
        clock.freeze(T0)
        calm = engine.start("escalating_reminder", {}, "admin")
        clock.advance(seconds=600)
        late = engine.start("escalating_reminder", {}, "admin")
        with db.transaction() as s:  # the later one is the more urgent, until the first one is late
            s.get(HumanTask, task(db, late, "repair").id).priority = 51
        calm_id, late_id = task(db, calm, "repair").id, task(db, late, "repair").id
        assert [t["id"] for t in json.loads(run("tasks", "list", "--user", "li.na", "--json"))] == [late_id, calm_id]

        clock.advance(seconds=2 * 3600 - 600 + 1)
        assert engine.fire_due_timers()["fired"] == [calm]
        rows = json.loads(run("tasks", "list", "--user", "li.na", "--json"))
        assert [(r["id"], r["priority"], r["overdue"], r["escalation_level"]) for r in rows] == [
            (calm_id, 51, True, 1), (late_id, 51, False, 0)]  # same priority: the earlier due first
        late_rows = json.loads(run("tasks", "list", "--group", "hotline", "--late", "--json"))
        assert [r["id"] for r in late_rows] == [calm_id]
        clock.advance(seconds=600)  # the second one is past its due time too; its timer has not fired
        assert [r["id"] for r in json.loads(run("tasks", "list", "--late", "--json"))] == [calm_id, late_id]
        lines = run("tasks", "list", "--user", "li.na").splitlines()
        assert lines[0].split()[-4:] == ["PRIO", "DUE", "LATE", "LEVEL"]
        assert lines[1].split()[0] == str(calm_id) and lines[1].split()[-2:] == ["True", "1"]
        assert lines[2].split()[0] == str(late_id) and lines[2].split()[-2:] == ["True", "0"]
        shown = json.loads(run("tasks", "show", str(calm_id), "--json"))
        assert (shown["overdue"], shown["escalation_level"], shown["priority"]) == (True, 1, 51)
    finally:
        hotline_app(app).close()


# --- the escalation process and the operation refuse bad input ------------------------------

@pytest.mark.parametrize(("data", "error"), [
    ({"reassign": True}, "escalation needs escalation_group"),
    ({"escalation_group": "  "}, "escalation needs escalation_group"),
    ({"escalation_group": "hotline", "escalation_level": "two"}, "escalation_level must be a whole number"),
    ({"escalation_group": "hotline", "escalation_due_in": "tomorrow"},
     "due_in 'tomorrow' is neither an ISO duration"),
    ({"escalation_group": "water-dept", "reassign": True}, "nobody supervises group 'water-dept'"),
])
def test_the_escalation_process_names_what_is_wrong_with_its_input(hotline, data, error):
    with pytest.raises(StepFailed, match=error):
        hotline.start("escalation", data, "admin")


@pytest.mark.parametrize(("params", "error"), [
    ({"level": 0}, "level must be a whole number of 1 or more, not 0"),
    ({"level": True}, "level must be a whole number"),
    ({"raise_priority": -1}, "raise_priority must be a whole number of 0 or more"),
    ({"mark_overdue": "yes"}, "mark_overdue must be true or false"),
    ({"reassign_group": "nobody-here"}, "there is no group 'nobody-here'"),
    ({"reassign_group": "hotline", "supervisors_of": "hotline"}, "not both"),
    ({"element": ""}, "element must be the id of a BPMN element"),
    ({"due_in": "P1M"}, "no months or years"),
])
def test_the_operation_refuses_bad_parameters(db, params, error):
    with db.transaction() as s, pytest.raises(ValueError, match=error):
        registry.call("task.escalate", {**params, "_session": s, "_instance_id": 1})


def test_due_times_are_read_as_durations_or_dates():
    assert escalation.parse_due("PT2H") == timedelta(hours=2)
    assert escalation.parse_due("P1DT4H30M") == timedelta(days=1, hours=4, minutes=30)
    assert escalation.parse_due("P1W") == timedelta(weeks=1)
    assert escalation.parse_due(timedelta(minutes=5)) == timedelta(minutes=5)
    at = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # what business_due(hours=4) gives
    assert escalation.parse_due(at) == at
    assert escalation.parse_due("2026-03-03T09:00:00+08:00") == at
    assert escalation.parse_due(None) is None
    for bad in ("P", "PT", "2 hours", "P1Y"):
        with pytest.raises(ValueError, match="neither an ISO duration"):
            escalation.parse_due(bad)
