"""Timer start events: processes the workers start on schedule (a daily IOU check and the like)."""
from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from conftest import bpmn_path
from engine_helpers import T0, history, open_elements, status, task_data, timers
from sqlalchemy import func, select
from support import settings_for

from app import create_app, hotline
from app.db import Database
from app.engine import ProcessEngine, clock
from app.engine.schedules import list_schedules
from app.errors import LibraryInvalid
from app.models import Incident, ProcessInstance
from app.models.schedule import ProcessSchedule

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def schedule(db, key: str) -> dict:
    with db.transaction() as s:
        [row] = [r for r in list_schedules(s) if r["process"] == key]
    return row


def instance_ids(db) -> list[int]:
    with db.transaction() as s:
        return list(s.scalars(select(ProcessInstance.id).order_by(ProcessInstance.id)))


def started(result: dict) -> list[int]:
    assert result["failed"] == [], result
    return [s["instance_id"] for s in result["started"]]


def variant(tmp_path, source: str, name: str, *replacements: tuple[str, str], filename: str | None = None):
    """A copy of a test diagram with some text replaced (a new version of the same process)."""
    text = bpmn_path(source).read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    folder = tmp_path / name
    folder.mkdir()
    path = folder / (filename or source)
    path.write_text(text, encoding="utf-8")
    return path


def test_deploy_plans_the_first_run_one_period_after_deploy(engine, deploy):
    clock.freeze(T0)
    deploy("schedule_daily.bpmn")

    row = schedule(engine.db, "schedule_daily")
    assert (row["element_id"], row["kind"], row["expression"], row["timer"]) == (
        "every_day", "cycle", '"R/P1D"', "R/P1D")
    assert (row["next_due_at"], row["remaining"], row["enabled"], row["last_instance_id"]) == (T0 + DAY, None, True,
                                                                                                None)


def test_a_due_schedule_starts_one_instance_past_its_timer_start(engine, deploy):
    clock.freeze(T0)
    deploy("schedule_daily.bpmn")
    assert started(engine.start_due_schedules()) == []

    clock.advance(days=1, seconds=1)
    [iid] = started(engine.start_due_schedules())

    assert status(engine.db, iid) == "waiting"
    assert open_elements(engine.db, iid) == ["review"]  # the script after the start ran: not waiting at the start
    assert timers(engine.db, iid) == []  # the instance keeps no timer of its own start event
    assert task_data(engine, iid, "review")["scheduled_for"] == (T0 + DAY).isoformat()
    [fired] = history(engine.db, iid, "timer_fired")
    assert (fired.element_id, fired.actor) == ("every_day", "scheduler")
    row = schedule(engine.db, "schedule_daily")
    assert (row["next_due_at"], row["last_instance_id"], row["last_started_at"]) == (T0 + 2 * DAY, iid,
                                                                                     T0 + DAY + SECOND)
    assert started(engine.start_due_schedules()) == []  # that slot is done

    clock.advance(days=1)
    [second] = started(engine.start_due_schedules())
    assert second != iid
    assert schedule(engine.db, "schedule_daily")["next_due_at"] == T0 + 3 * DAY


def test_after_a_restart_the_schedule_continues_at_its_next_due_time(engine, deploy, forms_dir):
    clock.freeze(T0)
    deploy("schedule_daily.bpmn")
    clock.advance(days=1, seconds=1)
    started(engine.start_due_schedules())

    restarted = ProcessEngine(Database(engine.db.url), forms_dir)  # a new worker process: nothing in memory
    try:
        clock.advance(hours=23)
        assert started(restarted.start_due_schedules()) == []
        clock.advance(hours=1)
        [iid] = started(restarted.start_due_schedules())
        assert task_data(restarted, iid, "review")["scheduled_for"] == (T0 + 2 * DAY).isoformat()
    finally:
        restarted.db.dispose()
    assert len(instance_ids(engine.db)) == 2


def test_a_cycle_with_repetitions_runs_that_many_times_from_its_start(engine, deploy):
    clock.freeze(T0)
    deploy("schedule_three_days.bpmn")
    first = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # 2026-03-03 02:00 in Beijing
    assert (schedule(engine.db, "schedule_three_days")["next_due_at"],
            schedule(engine.db, "schedule_three_days")["remaining"]) == (first, 3)

    runs = []
    for day in range(5):
        clock.freeze(first + day * DAY + SECOND)
        runs += started(engine.start_due_schedules())
    assert len(runs) == 3
    row = schedule(engine.db, "schedule_three_days")
    assert (row["next_due_at"], row["remaining"], row["last_instance_id"]) == (None, 0, runs[-1])


def test_catching_up_after_every_worker_was_down_starts_once(engine, deploy):
    clock.freeze(T0)
    deploy("schedule_daily.bpmn", "schedule_three_days.bpmn")
    clock.advance(days=2, hours=6)  # nobody swept: the daily run missed T0+1d and T0+2d, the other two slots

    result = engine.start_due_schedules()
    assert sorted(s["process"] for s in result["started"]) == ["schedule_daily", "schedule_three_days"]
    daily = schedule(engine.db, "schedule_daily")
    assert daily["next_due_at"] == T0 + 3 * DAY  # the next slot after now, not the missed ones
    three = schedule(engine.db, "schedule_three_days")
    assert (three["remaining"], three["next_due_at"]) == (1, datetime(2026, 3, 4, 18, 0, tzinfo=UTC))
    assert started(engine.start_due_schedules()) == []
    assert len(instance_ids(engine.db)) == 2


def test_a_time_date_start_runs_once(engine, deploy):
    clock.freeze(T0)
    deploy("schedule_once.bpmn")
    clock.freeze(datetime(2026, 3, 5, 8, 0, 1, tzinfo=UTC))
    [iid] = started(engine.start_due_schedules())
    [fired] = history(engine.db, iid, "timer_fired")
    assert fired.element_id == "on_the_day"
    clock.advance(days=30)
    assert started(engine.start_due_schedules()) == []
    assert schedule(engine.db, "schedule_once")["next_due_at"] is None


def test_an_unchanged_redeploy_keeps_the_next_due_time(engine, deploy):
    clock.freeze(T0)
    deploy("schedule_daily.bpmn")
    clock.advance(hours=20)
    deploy("schedule_daily.bpmn")
    assert schedule(engine.db, "schedule_daily")["next_due_at"] == T0 + DAY


def test_a_new_version_with_another_cycle_reschedules(engine, tmp_path, deploy):
    clock.freeze(T0)
    deploy("schedule_daily.bpmn")
    clock.advance(hours=20)
    hourly = variant(tmp_path, "schedule_daily.bpmn", "hourly", ('"R/P1D"', '"R/PT1H"'))
    engine.deploy([hourly])

    row = schedule(engine.db, "schedule_daily")
    assert (row["version"], row["timer"], row["next_due_at"]) == (2, "R/PT1H", T0 + timedelta(hours=21))
    clock.advance(hours=1, seconds=1)
    [iid] = started(engine.start_due_schedules())
    with engine.db.transaction() as s:
        assert s.get(ProcessInstance, iid).version.number == 2


def test_a_new_version_without_the_timer_start_disables_the_schedule(engine, tmp_path, deploy):
    clock.freeze(T0)
    deploy("schedule_daily.bpmn")
    by_hand = variant(tmp_path, "schedule_daily.bpmn", "by_hand", (
        """<bpmn:timerEventDefinition id="every_day_timer">
        <bpmn:timeCycle xsi:type="bpmn:tFormalExpression">"R/P1D"</bpmn:timeCycle>
      </bpmn:timerEventDefinition>""", ""))
    engine.deploy([by_hand])
    row = schedule(engine.db, "schedule_daily")
    assert (row["enabled"], row["next_due_at"]) == (False, None)
    clock.advance(days=3)
    assert started(engine.start_due_schedules()) == []

    deploy("schedule_daily.bpmn")  # the timer comes back: planned again from now
    row = schedule(engine.db, "schedule_daily")
    assert (row["enabled"], row["next_due_at"]) == (True, T0 + 4 * DAY)


def test_a_cycle_that_is_not_iso_8601_is_a_deploy_error_naming_the_element(engine):
    with pytest.raises(LibraryInvalid) as caught:
        engine.deploy([bpmn_path("schedule_bad_cycle.bpmn")])
    [problem] = caught.value.problems
    assert problem.element_id == "every_day"
    assert "'R/every day'" in problem.message and "repeating interval" in problem.message
    with engine.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(ProcessSchedule)) == 0


@pytest.mark.parametrize("expression, complaint", [
    ("R/P1D", "could not be evaluated"),  # not quoted: Python reads R / P1D
    ('"R0/P1D"', "zero times"),
    ('"R/PT0S"', "not longer than zero"),
    ('"next tuesday"', "not an ISO 8601 date-time"),
])
def test_other_bad_timer_starts_are_named_too(engine, tmp_path, expression, complaint):
    tag = "timeDate" if "tuesday" in expression else "timeCycle"
    path = variant(tmp_path, "schedule_daily.bpmn", "bad", (
        '<bpmn:timeCycle xsi:type="bpmn:tFormalExpression">"R/P1D"</bpmn:timeCycle>',
        f'<bpmn:{tag} xsi:type="bpmn:tFormalExpression">{expression}</bpmn:{tag}>'))
    problems = engine.validate([path]).errors
    assert [(p.element_id, complaint in p.message) for p in problems] == [("every_day", True)], problems


def test_started_by_hand_a_timer_start_process_runs_now(engine, deploy):
    clock.freeze(T0)
    deploy("schedule_daily.bpmn")
    iid = engine.start("schedule_daily", {}, "admin")
    assert open_elements(engine.db, iid) == ["review"]
    assert timers(engine.db, iid) == []
    assert schedule(engine.db, "schedule_daily")["next_due_at"] == T0 + DAY  # the schedule is not moved


def test_a_failing_start_is_an_incident_and_the_schedule_moves_on(engine, tmp_path):
    clock.freeze(T0)
    broken = variant(tmp_path, "schedule_daily.bpmn", "broken", ("ran_at = iso(now())", "ran_at = 1 / 0"))
    engine.deploy([broken])
    clock.advance(days=1, seconds=1)

    result = engine.start_due_schedules()
    assert result["started"] == []
    [failure] = result["failed"]
    assert "ZeroDivisionError" in failure["error"]
    row = schedule(engine.db, "schedule_daily")
    assert row["next_due_at"] == T0 + 2 * DAY and "ZeroDivisionError" in row["last_error"]
    with engine.db.transaction() as s:
        incident = s.get(Incident, failure["incident_id"])
        assert (incident.process_key, incident.element_id, incident.status) == ("schedule_daily", "note_run", "open")
    assert engine.start_due_schedules() == {"started": [], "failed": [], "skipped": []}  # no incident per sweep


def _sweep_at_once(workers: list[ProcessEngine], rounds: int = 3) -> list[dict]:
    """Every worker sweeps schedules ``rounds`` times, all starting at the same moment, in threads."""
    barrier = threading.Barrier(len(workers))
    results: list[dict] = []
    errors: list[BaseException] = []

    def sweep(worker: ProcessEngine) -> None:
        try:
            barrier.wait()
            for _ in range(rounds):
                results.append(worker.start_due_schedules())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    return results


@pytest.mark.postgres
def test_four_concurrent_sweepers_start_exactly_one_instance_per_slot(pg_db, tmp_path, forms_dir):
    clock.freeze(T0)
    engine = ProcessEngine(pg_db, forms_dir)
    keys = [f"schedule_daily_{n}" for n in range(3)]
    engine.deploy([variant(tmp_path, "schedule_daily.bpmn", key, ("schedule_daily", key), filename=f"{key}.bpmn")
                   for key in keys])
    workers = [ProcessEngine(Database(pg_db.url), forms_dir) for _ in range(4)]
    slots = 4
    try:
        for slot in range(1, slots + 1):
            clock.freeze(T0 + slot * DAY + SECOND)
            results = _sweep_at_once(workers)
            assert sum(len(r["failed"]) for r in results) == 0
            assert sum(len(r["started"]) for r in results) == len(keys)
    finally:
        for w in workers:
            w.db.dispose()

    with pg_db.transaction() as s:
        rows = s.execute(select(ProcessInstance.id, ProcessInstance.version_id)).all()
    assert len(rows) == len(keys) * slots
    for key in keys:
        row = schedule(pg_db, key)
        assert row["next_due_at"] == T0 + (slots + 1) * DAY
    seen = {(task_data(engine, iid, "review")["scheduled_for"], version) for iid, version in rows}
    assert len(seen) == len(keys) * slots  # one instance per schedule and slot, none twice


def test_cli_lists_schedules_and_runs_the_due_ones(db, tmp_path, monkeypatch):
    library = tmp_path / "library"
    library.mkdir()
    for name in ("schedule_daily.bpmn", "schedule_once.bpmn"):
        (library / name).write_text(bpmn_path(name).read_text(encoding="utf-8"), encoding="utf-8")
    app = create_app(settings_for(tmp_path, monkeypatch, database_url=db.url, bpmn_dir=library))
    runner = app.test_cli_runner()
    try:
        clock.freeze(T0)
        assert runner.invoke(args=["bpmn", "deploy"]).exit_code == 0
        listed = json.loads(runner.invoke(args=["schedules", "list", "--json"]).stdout)
        assert [(r["process"], r["element_id"], r["timer"], r["next_due_at"]) for r in listed] == [
            ("schedule_daily", "every_day", "R/P1D", (T0 + DAY).isoformat()),
            ("schedule_once", "on_the_day", "2026-03-05T08:00:00+00:00", "2026-03-05T08:00:00+00:00")]
        human = runner.invoke(args=["schedules", "list"]).stdout
        assert "schedule_daily" in human and "for ever" in human

        clock.advance(days=1, seconds=1)
        ran = runner.invoke(args=["schedules", "run-due"])
        assert ran.exit_code == 0, ran.output
        [line] = [x for x in ran.stdout.splitlines() if x.startswith("started schedule_daily")]
        assert line.endswith(f"(due {(T0 + DAY).isoformat()})")
        again = json.loads(runner.invoke(args=["schedules", "run-due", "--json"]).stdout)
        assert again == {"started": [], "failed": [], "skipped": []}
    finally:
        hotline(app).close()


def test_an_instance_never_waits_at_a_timer_start_whichever_start_began_it(engine, deploy):
    clock.freeze(T0)
    deploy("schedule_two_starts.bpmn")
    by_hand = engine.start("schedule_two_starts", {}, "admin")  # through the none start
    assert open_elements(engine.db, by_hand) == ["review"]
    assert timers(engine.db, by_hand) == []  # the timer start is the schedule's, not this instance's

    clock.advance(days=1, seconds=1)
    [scheduled] = started(engine.start_due_schedules())
    assert open_elements(engine.db, scheduled) == ["review"]
    assert timers(engine.db) == []
    clock.advance(days=1)
    assert engine.fire_due_timers()["fired"] == []
    assert len(instance_ids(engine.db)) == 2
