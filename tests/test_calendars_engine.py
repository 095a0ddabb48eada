"""Business calendars inside processes: due dates, timers, scripts and conditions on business hours.

The default calendar (Monday to Friday 09:00-12:00 and 13:00-18:00, Asia/Shanghai) is created
lazily by the engine on a fresh database; these tests add holidays and a 24/7 "duty" calendar,
and check that calendars are stored as they were built.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from engine_helpers import incidents, instance, open_elements, task, task_data, timers
from sqlalchemy.exc import IntegrityError

from app.engine import clock
from app.models import Calendar
from app.services import calendar_store
from app.services.calendars import build_calendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
FRIDAY_5PM = datetime(2026, 3, 6, 17, 0, tzinfo=SHANGHAI)
MONDAY_NOON = datetime(2026, 3, 9, 12, 0, tzinfo=SHANGHAI)


def shanghai(dt: datetime) -> datetime:
    return dt.astimezone(SHANGHAI)


def add_duty_calendar(engine) -> None:
    """A 24/7 calendar for the supervisors on duty, in three shifts."""
    duty = build_calendar("duty", "Asia/Shanghai", shifts=[
        (name, day, hours) for day in range(7)
        for name, hours in (("early", "06:00-14:00"), ("late", "14:00-22:00"), ("night", "22:00-06:00"))])
    with engine.db.transaction() as s:
        calendar_store.save_calendar(s, duty)
    engine.calendars.invalidate()


def test_friday_evening_ticket_is_due_monday_noon(engine, deploy):
    clock.freeze(FRIDAY_5PM)
    deploy("business_hours.bpmn")
    iid = engine.start("sla_complaint", {}, "admin")

    handle = task(engine.db, iid, "handle")
    assert shanghai(handle.due_at) == MONDAY_NOON  # Fri 17-18 (1h) + Mon 09-12 (3h), not Saturday
    [timer] = timers(engine.db, iid)
    assert (timer.element_id, shanghai(timer.due_at)) == ("sla_missed", MONDAY_NOON)
    data = task_data(engine, iid, "handle")
    assert datetime.fromisoformat(data["deadline"]) == MONDAY_NOON
    assert datetime.fromisoformat(data["plain_deadline"]) == FRIDAY_5PM + timedelta(hours=4)
    assert data["opened_in_hours"] is True and "after_hours" not in data  # the gateway's condition said so
    assert datetime.fromisoformat(data["work_starts"]) == FRIDAY_5PM


def test_ticket_opened_on_saturday_counts_from_monday_morning(engine, deploy):
    clock.freeze(datetime(2026, 3, 7, 10, 0, tzinfo=SHANGHAI))
    deploy("business_hours.bpmn")
    iid = engine.start("sla_complaint", {}, "admin")

    data = task_data(engine, iid, "handle")
    assert data["opened_in_hours"] is False and data["after_hours"] is True
    assert datetime.fromisoformat(data["work_starts"]) == datetime(2026, 3, 9, 9, 0, tzinfo=SHANGHAI)
    # Mon 09-12 (3h), lunch, 13-14 (1h)
    assert shanghai(task(engine.db, iid, "handle").due_at) == datetime(2026, 3, 9, 14, 0, tzinfo=SHANGHAI)


def test_sla_timer_fires_when_the_business_hours_run_out(engine, deploy):
    add_duty_calendar(engine)
    clock.freeze(FRIDAY_5PM)
    deploy("business_hours.bpmn")
    iid = engine.start("sla_complaint", {}, "admin")

    clock.freeze(datetime(2026, 3, 7, 12, 0, tzinfo=SHANGHAI))  # Saturday noon: 4 plain hours are long gone
    assert engine.fire_due_timers()["fired"] == []
    clock.freeze(MONDAY_NOON)
    assert engine.fire_due_timers()["fired"] == []  # a timer fires once its moment has passed
    clock.advance(seconds=1)
    assert engine.fire_due_timers()["fired"] == [iid]

    assert open_elements(engine.db, iid) == ["escalate"]
    # The duty calendar works around the clock: 2 business hours are 2 hours.
    assert task(engine.db, iid, "escalate").due_at == MONDAY_NOON + timedelta(hours=2, seconds=1)
    assert timers(engine.db, iid) == []


def test_a_calendar_the_process_names_must_exist(engine, deploy):
    clock.freeze(FRIDAY_5PM)
    deploy("business_hours.bpmn")
    iid = engine.start("sla_complaint", {}, "admin")
    clock.freeze(MONDAY_NOON + timedelta(seconds=1))

    result = engine.fire_due_timers()
    assert result["fired"] == [] and [f["instance_id"] for f in result["failed"]] == [iid]
    [incident] = incidents(engine.db, iid)
    assert incident.element_id == "escalate"
    assert "no business calendar 'duty' (known: default)" in incident.error
    assert open_elements(engine.db, iid) == ["handle"]  # nothing half-done

    add_duty_calendar(engine)
    engine.retry_incident(incident.id, "admin")
    assert open_elements(engine.db, iid) == ["escalate"]


def test_holidays_and_make_up_days_move_deadlines_once_the_cache_learns_of_them(engine, deploy):
    engine.calendars.ttl_seconds = 3600  # only invalidate() refreshes in this test
    clock.freeze(FRIDAY_5PM)
    deploy("business_hours.bpmn")
    before = engine.start("sla_complaint", {}, "admin")
    with engine.db.transaction() as s:  # Monday off, bridged by working on Sunday (调休)
        calendar_store.import_days(s, "2026-03-08,调休,1\n2026-03-09,Bridge holiday\n")

    stale = engine.start("sla_complaint", {}, "admin")
    engine.calendars.invalidate()  # what `calendars import-holidays` does in its process
    after = engine.start("sla_complaint", {}, "admin")

    assert shanghai(task(engine.db, before, "handle").due_at) == MONDAY_NOON
    assert shanghai(task(engine.db, stale, "handle").due_at) == MONDAY_NOON  # within the cache's TTL
    # Fri 17-18 (1h) + Sunday 09-12 (3h)
    assert shanghai(task(engine.db, after, "handle").due_at) == datetime(2026, 3, 8, 12, 0, tzinfo=SHANGHAI)


def test_changes_from_elsewhere_show_up_after_the_ttl(engine, deploy):
    engine.calendars.ttl_seconds = 0  # every engine transaction reloads
    clock.freeze(FRIDAY_5PM)
    deploy("business_hours.bpmn")
    engine.start("sla_complaint", {}, "admin")
    with engine.db.transaction() as s:
        calendar_store.import_days(s, "date,name\n2026-03-09,Holiday\n")

    iid = engine.start("sla_complaint", {}, "admin")
    # Fri 17-18 (1h) + Tue 09-12 (3h)
    assert shanghai(task(engine.db, iid, "handle").due_at) == datetime(2026, 3, 10, 12, 0, tzinfo=SHANGHAI)


def test_reminder_after_business_hours_with_a_duration_timer(engine, deploy):
    opened = datetime(2026, 3, 6, 17, 30, tzinfo=SHANGHAI)
    clock.freeze(opened)
    deploy("business_hours.bpmn")
    iid = engine.start("sla_callback", {"opened_at": opened.isoformat()}, "admin")

    reminder_due = datetime(2026, 3, 9, 10, 0, tzinfo=SHANGHAI)  # Fri 17:30-18 + Mon 09-10
    [timer] = timers(engine.db, iid)
    assert (timer.element_id, shanghai(timer.due_at)) == ("remind", reminder_due)

    clock.freeze(reminder_due)
    assert engine.fire_due_timers()["fired"] == []
    clock.advance(seconds=1)
    assert engine.fire_due_timers()["fired"] == [iid]

    assert open_elements(engine.db, iid) == ["call_back"]  # non-interrupting: the task stays open
    detail = engine.instance_detail(iid)  # the data of the reminder's path, which ran last
    assert detail["data"]["business_hours_waited"] == pytest.approx(1.5 + 1 / 3600)
    assert datetime.fromisoformat(detail["data"]["reminded_at"]) == datetime(2026, 3, 9, 2, 0, 1, tzinfo=UTC)
    assert instance(engine.db, iid).status == "waiting"


# --- storage -------------------------------------------------------------------------------------

def test_a_calendar_survives_the_database_as_it_was_built(db):
    team = build_calendar("team", "Europe/Berlin", {"Mon": ["09:00-12:00", "13:30-18:00"]}, title="Support team",
                          shifts=[("night", "Sun", "22:00-06:00"), ("early", "Mon", "05:00-13:00")],
                          holidays={date(2026, 12, 25): "Christmas"},
                          extra_days={date(2026, 12, 27): ("Inventory", ["10:00-14:00"])})
    with db.transaction() as s:
        calendar_store.save_calendar(s, team)
    with db.transaction() as s:
        loaded = calendar_store.load_calendars(s)
    again = loaded.get("team")
    assert (again.time_zone, again.title, again.is_default) == ("Europe/Berlin", "Support team", False)
    assert (again.hours, again.shifts, again.week) == (team.hours, team.shifts, team.week)
    assert (again.holidays, again.extra_days) == (team.holidays, team.extra_days)
    assert loaded.get().name == "default"  # created on first use, next to "team"


def test_one_default_calendar_at_a_time(db):
    with db.transaction() as s:
        calendar_store.load_calendars(s)
        calendar_store.save_calendar(s, build_calendar("night", "UTC", {0: ["00:00-06:00"]}, is_default=True))
    with db.transaction() as s:
        cals = calendar_store.load_calendars(s)
    assert cals.get().name == "night" and not cals.get("default").is_default
    with pytest.raises(IntegrityError), db.transaction() as s:  # the database holds the rule too
        s.add(Calendar(name="second", time_zone="UTC", is_default=True))
    with db.transaction() as s:  # "default" exists, though no longer the default: it is not made again
        assert calendar_store.ensure_default(s) is False
        assert sorted(c.name for c in calendar_store.load_calendars(s).all()) == ["default", "night"]
