"""Business-calendar arithmetic: properties over random calendars (hypothesis), then worked examples.

No database here: ``app.services.calendars`` is pure arithmetic over a loaded calendar.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.errors import InvalidInput, NotFound
from app.services import calendar_store
from app.services.calendars import (
    CalendarSet,
    Interval,
    build_calendar,
    business_due,
    default_calendar,
    is_working_time,
    next_working_time,
    plain_due,
    shifts_at,
    working_time_between,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
MICRO = timedelta(microseconds=1)
# Zones with DST at 02:00 (Berlin, New York), half an hour of DST (Lord Howe), DST at midnight
# (Santiago: 00:00 does not exist on its spring day), a quarter-hour offset, and none at all.
ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago",
         "Asia/Kathmandu", "UTC"]
FIRST_DAY, LAST_DAY = date(2026, 1, 1), date(2027, 12, 31)

property_test = settings(deadline=None, max_examples=150)  # no deadline: the first use of a zone reads tzdata


# --- strategies ----------------------------------------------------------------------------------

@st.composite
def day_hours(draw, max_intervals: int = 3) -> list[Interval]:
    """Non-overlapping intervals on a quarter-hour grid, possibly none, possibly 00:00-24:00."""
    points = sorted(draw(st.lists(st.integers(0, 96), unique=True, max_size=2 * max_intervals)))
    points = points[: len(points) // 2 * 2]
    return [Interval(a * 15, b * 15) for a, b in zip(points[::2], points[1::2], strict=True)]


dates = st.dates(FIRST_DAY, LAST_DAY)


@st.composite
def calendars(draw, zones=st.sampled_from(ZONES)):
    week = {d: draw(day_hours()) for d in range(7)}
    assume(any(week.values()))
    holidays = {d: "holiday" for d in draw(st.sets(dates, max_size=25))}
    extra = {d: ("make-up day", hours) for d in draw(st.sets(dates, max_size=6))
             if d not in holidays and (hours := draw(day_hours(2)))}
    return build_calendar("random", draw(zones), week, holidays=holidays, extra_days=extra)


instants = st.datetimes(datetime(2026, 1, 1), datetime(2027, 6, 30), timezones=st.just(UTC))
durations = st.tuples(st.integers(0, 120), st.integers(0, 59))


def requested(duration) -> timedelta:
    return timedelta(hours=duration[0], minutes=duration[1])


# --- properties ----------------------------------------------------------------------------------

@property_test
@given(calendars(), instants, durations)
def test_due_is_the_earliest_moment_with_exactly_the_requested_working_time(cal, start, duration):
    due = business_due(cal, start, *duration)

    assert due >= start and due.tzinfo == UTC
    assert working_time_between(cal, start, due) == requested(duration)
    if requested(duration):
        assert working_time_between(cal, start, due - MICRO) < requested(duration)  # earliest
        assert is_working_time(cal, due - MICRO)  # inside working time, or at the end of an interval
        assert due - start >= requested(duration)


@property_test
@given(calendars(), instants, durations, durations)
def test_adding_a_then_b_equals_adding_a_plus_b(cal, start, a, b):
    both = (a[0] + b[0], a[1] + b[1])
    assert business_due(cal, business_due(cal, start, *a), *b) == business_due(cal, start, *both)


@property_test
@given(calendars(), instants, st.timedeltas(timedelta(0), timedelta(days=20)), durations)
def test_later_start_never_means_earlier_due(cal, start, delay, duration):
    assert business_due(cal, start, *duration) <= business_due(cal, start + delay, *duration)


@property_test
@given(calendars(), instants, st.sampled_from(ZONES), durations)
def test_the_zone_a_start_is_written_in_changes_nothing(cal, start, zone, duration):
    assert business_due(cal, start.astimezone(ZoneInfo(zone)), *duration) == business_due(cal, start, *duration)


@property_test
@given(calendars(), instants, st.timedeltas(timedelta(0), timedelta(days=30)))
def test_working_time_between_is_additive_and_antisymmetric(cal, a, gap):
    b = a + gap / 3
    c = a + gap
    assert working_time_between(cal, a, c) == working_time_between(cal, a, b) + working_time_between(cal, b, c)
    assert working_time_between(cal, c, a) == -working_time_between(cal, a, c)
    assert timedelta(0) <= working_time_between(cal, a, c) <= gap


@property_test
@given(calendars(), instants)
def test_next_working_time_is_the_next_working_moment(cal, t):
    nxt = next_working_time(cal, t)
    assert nxt >= t and is_working_time(cal, nxt)
    assert working_time_between(cal, t, nxt) == timedelta(0)
    assert (nxt == t) == is_working_time(cal, t)


@property_test
@given(calendars(), instants, st.integers(0, 400), durations)
def test_holidays_are_never_counted(cal, start, span_days, duration):
    plain = build_calendar("plain", cal.time_zone, dict(enumerate(cal.hours)),
                           extra_days={d: v for d, v in cal.extra_days.items()})
    end = start + timedelta(days=span_days)
    lost = timedelta(0)
    for day in cal.holidays:
        midnight = datetime.combine(day, datetime.min.time(), cal.zone)
        day_start, day_end = max(midnight, start), min(midnight + timedelta(days=1), end)
        if day_start < day_end:
            lost += working_time_between(plain, day_start, day_end)
        assert working_time_between(cal, midnight, midnight + timedelta(days=1)) == timedelta(0)
        assert not is_working_time(cal, midnight + timedelta(hours=12))
    assert working_time_between(cal, start, end) == working_time_between(plain, start, end) - lost
    due = business_due(cal, start, *duration)
    if requested(duration):  # the working moment the deadline ends with is never on a holiday
        assert (due - MICRO).astimezone(cal.zone).date() not in cal.holidays


@property_test
@given(instants, st.integers(0, 2000), st.integers(0, 59),
       st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]))
def test_around_the_clock_in_a_dst_zone_business_time_is_real_time(start, hours, minutes, zone):
    always = build_calendar("24x7", zone, {d: ["00:00-24:00"] for d in range(7)})
    assert business_due(always, start, hours, minutes) == start + timedelta(hours=hours, minutes=minutes)
    end = start + timedelta(hours=hours, minutes=minutes)
    assert working_time_between(always, start, end) == end - start


@property_test
@given(st.dates(FIRST_DAY, LAST_DAY), st.sampled_from(ZONES))
def test_a_dst_zone_office_day_keeps_its_nine_hours(day, zone):
    """Office hours avoid the night, where clocks change: every weekday has 8 working hours."""
    office = build_calendar("office", zone, {d: ["09:00-12:00", "13:00-18:00"] for d in range(5)})
    midnight = datetime.combine(day, datetime.min.time(), office.zone)
    expected = timedelta(hours=8) if day.weekday() < 5 else timedelta(0)
    assert working_time_between(office, midnight, midnight + timedelta(days=1, hours=2)) - \
        working_time_between(office, midnight + timedelta(days=1), midnight + timedelta(days=1, hours=2)) == expected


# --- the examples ------------------------------------------------------------------------

def sh(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.mark.parametrize(("start", "hours", "due"), [
    (sh(2026, 3, 6, 17, 0), 4, sh(2026, 3, 9, 12, 0)),   # Fri 17-18 (1h) + Mon 09-12 (3h): noon, not 13:00
    (sh(2026, 3, 6, 18, 30), 4, sh(2026, 3, 9, 14, 0)),  # Mon 09-12 (3h) + 13-14 (1h)
    (sh(2026, 3, 6, 12, 30), 4, sh(2026, 3, 6, 17, 0)),  # opened at lunch: counts from 13:00
    (sh(2026, 3, 7, 10, 0), 1, sh(2026, 3, 9, 10, 0)),   # Saturday
    (sh(2026, 3, 9, 9, 0), 8, sh(2026, 3, 9, 18, 0)),    # a whole working day ends at 18:00
    (sh(2026, 3, 9, 9, 0), 0, sh(2026, 3, 9, 9, 0)),
])
def test_default_calendar_examples(start, hours, due):
    cal = default_calendar()
    result = business_due(cal, start, hours=hours)
    assert result == due and result.tzinfo == UTC


def test_minutes_and_plain_durations():
    cal = default_calendar()
    assert business_due(cal, sh(2026, 3, 6, 17, 45), minutes=30) == sh(2026, 3, 9, 9, 15)
    assert business_due(cal, sh(2026, 3, 6, 17, 0), hours=1.5) == sh(2026, 3, 9, 9, 30)
    assert plain_due(sh(2026, 3, 6, 17, 0), hours=4) == sh(2026, 3, 6, 21, 0)
    assert plain_due(sh(2026, 3, 6, 17, 0), hours=4).tzinfo == UTC
    assert working_time_between(cal, sh(2026, 3, 6, 17, 0), sh(2026, 3, 9, 14, 0)) == timedelta(hours=5)
    assert working_time_between(cal, sh(2026, 3, 9, 14, 0), sh(2026, 3, 6, 17, 0)) == -timedelta(hours=5)


# Illustrative dates in the way China's State Council arranges National Day: Oct 1-7 off,
# with the weekend days around it worked instead (调休): Sunday Sep 27 and Saturday Oct 10.
NATIONAL_DAY_CSV = (Path(__file__).parent / "data" / "calendars" / "national_day_2026.csv").read_text("utf-8")


def national_day_calendar():
    rows = calendar_store.parse_days_csv(NATIONAL_DAY_CSV)
    base = default_calendar()
    return build_calendar("cn", "Asia/Shanghai", dict(enumerate(base.hours)),
                          holidays={d: n for _, d, n, working in rows if not working},
                          extra_days={d: (n, base.standard_hours()) for _, d, n, working in rows if working})


@pytest.mark.parametrize(("start", "hours", "due"), [
    (sh(2026, 9, 30, 17, 0), 4, sh(2026, 10, 8, 12, 0)),   # Wed before the holiday: resumes Thu Oct 8
    (sh(2026, 10, 9, 17, 0), 4, sh(2026, 10, 10, 12, 0)),  # Fri Oct 9: the make-up Saturday counts
    (sh(2026, 9, 26, 10, 0), 2, sh(2026, 9, 27, 11, 0)),   # Saturday: the make-up Sunday comes first
    (sh(2026, 10, 3, 10, 0), 1, sh(2026, 10, 8, 10, 0)),   # opened inside the holiday
])
def test_chinese_holiday_week_with_make_up_days(start, hours, due):
    assert business_due(national_day_calendar(), start, hours=hours) == due


def test_chinese_holiday_week_counts_only_working_days():
    cal = national_day_calendar()
    # Sep 27 (make-up Sunday) to Oct 11: Sep 27, 28, 29, 30, Oct 8, 9, 10 are worked: 7 days of 8 hours.
    assert working_time_between(cal, sh(2026, 9, 27, 0, 0), sh(2026, 10, 11, 0, 0)) == timedelta(hours=56)
    assert not is_working_time(cal, sh(2026, 10, 5, 10, 0))  # a Monday, but National Day
    assert is_working_time(cal, sh(2026, 10, 10, 10, 0))  # a Saturday, but worked
    assert next_working_time(cal, sh(2026, 10, 1, 8, 0)) == sh(2026, 10, 8, 9, 0)


# --- daylight saving time ------------------------------------------------------------------------

def be(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def test_berlin_office_across_the_spring_change():
    office = build_calendar("berlin", "Europe/Berlin", {d: ["09:00-12:00", "13:00-18:00"] for d in range(5)})
    due = business_due(office, be(2026, 3, 27, 17, 0), hours=2)  # Fri 17:00 CET, clocks go forward on Sunday
    assert due == be(2026, 3, 30, 10, 0)  # Mon 10:00 CEST
    assert due == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert be(2026, 3, 27, 17, 0) == datetime(2026, 3, 27, 16, 0, tzinfo=UTC)


def test_night_shift_on_dst_days_counts_the_hours_that_really_pass():
    nights = build_calendar("nights", "Europe/Berlin", shifts=[("night", "Sat", "23:00-06:00")])
    spring_night = working_time_between(nights, be(2026, 3, 28, 12, 0), be(2026, 3, 29, 12, 0))
    autumn_night = working_time_between(nights, be(2026, 10, 24, 12, 0), be(2026, 10, 25, 12, 0))
    assert (spring_night, autumn_night) == (timedelta(hours=6), timedelta(hours=8))
    assert business_due(nights, be(2026, 3, 28, 23, 0), hours=6) == be(2026, 3, 29, 6, 0)


def test_wall_times_that_do_not_exist_mean_the_moment_the_clock_jumps():
    odd = build_calendar("odd", "Europe/Berlin", {"Sun": ["02:00-02:30", "02:30-04:00"]})
    # 29 March 2026: 02:00-03:00 is skipped; 02:30-04:00 is the real hour 03:00-04:00 CEST.
    assert working_time_between(odd, be(2026, 3, 29, 0, 0), be(2026, 3, 30, 0, 0)) == timedelta(hours=1)
    assert next_working_time(odd, be(2026, 3, 29, 0, 0)) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    # 25 October 2026: 02:00-03:00 happens twice, and both count.
    assert working_time_between(odd, be(2026, 10, 25, 0, 0), be(2026, 10, 26, 0, 0)) == timedelta(hours=3)

    # A shift that should end at 02:30 ends when the clock jumps from 02:00 to 03:00 (not at 03:30);
    # one that should start at 02:30 starts then too (not at 03:30).
    ends_in_gap = build_calendar("a", "Europe/Berlin", {"Sun": ["01:30-02:30"]})
    starts_in_gap = build_calendar("b", "Europe/Berlin", {"Sun": ["02:30-05:00"]})
    spring_day = (be(2026, 3, 29, 0, 0), be(2026, 3, 30, 0, 0))
    assert working_time_between(ends_in_gap, *spring_day) == timedelta(minutes=30)
    assert working_time_between(starts_in_gap, *spring_day) == timedelta(hours=2)
    assert next_working_time(starts_in_gap, spring_day[0]) == be(2026, 3, 29, 3, 0)


# --- shifts --------------------------------------------------------------------------------------

def test_shifts_cover_the_clock_and_may_overlap_at_handover():
    team = build_calendar("team", "Asia/Shanghai", shifts=[
        (name, day, hours) for day in range(7)
        for name, hours in (("early", "06:00-14:30"), ("late", "14:00-22:30"), ("night", "22:00-06:30"))])
    assert all(team.week[d] == (Interval(0, 1440),) for d in range(7))
    assert business_due(team, sh(2026, 3, 7, 23, 0), hours=30) == sh(2026, 3, 9, 5, 0)
    assert shifts_at(team, sh(2026, 3, 7, 14, 15)) == ["early", "late"]
    assert shifts_at(team, sh(2026, 3, 8, 3, 0)) == ["night"]  # Saturday's night shift, after midnight
    assert shifts_at(team, sh(2026, 3, 9, 6, 15)) == ["early", "night"]  # Sunday's night runs into Monday
    closed = build_calendar("closed", "Asia/Shanghai", holidays={date(2026, 3, 8): "closed"},
                            shifts=[(s.name, s.weekday, s.interval) for s in team.shifts])
    assert shifts_at(closed, sh(2026, 3, 8, 10, 0)) == [] and not is_working_time(closed, sh(2026, 3, 8, 10, 0))


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("call", "message"), [
    (lambda c: business_due(c, sh(2026, 3, 6, 17, 0), hours=-1), "hours must not be negative (got -1)"),
    (lambda c: business_due(c, sh(2026, 3, 6, 17, 0), minutes=-5), "minutes must not be negative"),
    (lambda c: business_due(c, sh(2026, 3, 6, 17, 0), hours="4"), "hours must be a number, not '4'"),
    (lambda c: business_due(c, sh(2026, 3, 6, 17, 0), hours=float("nan")), "hours must be a number"),
    (lambda c: business_due(c, datetime(2026, 3, 6, 17, 0), hours=4), "has no time zone"),
    (lambda c: working_time_between(c, sh(2026, 3, 6, 17, 0), datetime(2026, 3, 9)), "end 2026-03-09T00:00:00 has"),
    (lambda c: plain_due(sh(2026, 3, 6), hours=-2), "hours must not be negative"),
    (lambda c: is_working_time(c, "2026-03-06T17:00:00+08:00"), "time must be a date and time, not str"),
])
def test_bad_arguments_say_what_is_wrong(call, message):
    with pytest.raises(InvalidInput) as err:
        call(default_calendar())
    assert message in err.value.message


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"time_zone": "Asia/Beijing"}, "unknown time zone 'Asia/Beijing': use an IANA name like Asia/Shanghai"),
    ({"time_zone": "../etc/passwd"}, "unknown time zone"),
    ({"hours": {"Mon": ["09:00-12:00", "11:00-13:00"]}}, "calendar 'x', Monday: 09:00-12:00 overlaps 11:00-13:00"),
    ({"hours": {"Tue": ["18:00-09:00"]}}, "ends before it starts (only shifts may run past midnight)"),
    ({"hours": {"Wed": ["9-12"]}}, "calendar 'x', Wednesday: '9-12' is not an interval like 09:00-12:00"),
    ({"hours": {"Thu": ["09:00-25:00"]}}, "'09:00-25:00' is not an interval like 09:00-12:00 (times from 00:00 to"),
    ({"hours": {"Thu": ["09:00"]}}, "'09:00' is not an interval like 09:00-12:00"),
    ({"hours": {"Someday": ["09:00-12:00"]}}, "'Someday' is not a weekday"),
    ({"shifts": [("night", 0, "22:00-06:00"), ("night", 1, "05:00-07:00")]},
     "shift 'night' on Tuesday: 00:00-06:00 overlaps 05:00-07:00"),
    ({"shifts": [("", 0, "22:00-06:00")]}, "a shift needs a name"),
    ({"holidays": {date(2026, 10, 1): "国庆节"}, "extra_days": {date(2026, 10, 1): ("调休", ["09:00-18:00"])}},
     "2026-10-01 is both a holiday and an extra working day"),
    ({"extra_days": {date(2026, 10, 10): ("调休", [])}}, "an extra working day needs working hours"),
    ({"holidays": {"2026-13-01": "?"}}, "'2026-13-01' is not a date like 2026-10-01"),
    ({"name": " "}, "a calendar needs a name"),
])
def test_bad_calendars_are_refused_with_a_clear_error(kwargs, message):
    args = {"name": "x", "time_zone": "Asia/Shanghai", **kwargs}
    with pytest.raises(InvalidInput) as err:
        build_calendar(args.pop("name"), args.pop("time_zone"), **args)
    assert message in err.value.message


def test_a_calendar_without_working_time_says_so_instead_of_looping():
    idle = build_calendar("idle", "UTC", {}, extra_days={date(2026, 5, 1): ("once", ["09:00-10:00"])})
    assert business_due(idle, datetime(2026, 4, 1, tzinfo=UTC), minutes=30) == datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="calendar 'idle' has no working time in the 1098 days after 2026-05-02"):
        business_due(idle, datetime(2026, 4, 1, tzinfo=UTC), hours=2)
    assert working_time_between(idle, datetime(2026, 6, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)) == \
        timedelta(0)


def test_calendar_sets_find_by_name_or_default():
    cals = CalendarSet([default_calendar(), build_calendar("duty", "UTC", {0: ["00:00-24:00"]})])
    assert cals.get().name == "default" and cals.get("duty").name == "duty"
    with pytest.raises(NotFound, match=r"no business calendar 'night' \(known: default, duty\)"):
        cals.get("night")
    with pytest.raises(NotFound, match="no default business calendar"):
        CalendarSet([]).get()


def test_standard_hours_are_the_most_common_working_day():
    assert [str(iv) for iv in default_calendar().standard_hours()] == ["09:00-12:00", "13:00-18:00"]
    mixed = build_calendar("m", "UTC", {0: ["08:00-12:00"], 1: ["09:00-17:00"], 2: ["09:00-17:00"]})
    assert [str(iv) for iv in mixed.standard_hours()] == ["09:00-17:00"]


# --- the holidays CSV --------------------------------------------------------------------------

def test_holiday_csv_rows_and_header():
    rows = calendar_store.parse_days_csv("2026-10-01,National Day\n\n# comment\n2026-10-10, make-up ,1\n")
    assert rows == [(1, date(2026, 10, 1), "National Day", False), (4, date(2026, 10, 10), "make-up", True)]
    assert calendar_store.parse_days_csv("date,name,working\n2026-10-01,x,0\n") == [(2, date(2026, 10, 1), "x", False)]


def test_bad_holiday_csv_names_every_bad_line_and_imports_nothing():
    text = "date,name\n2026-10-01,ok\n2026-02-30,bad date\n2026-10-01,again\n2026-10-02,\n2026-10-03,x,2\n2026-10-04\n"
    with pytest.raises(InvalidInput) as err:
        calendar_store.parse_days_csv(text, "cn.csv")
    assert err.value.detail["problems"] == [
        "line 3: '2026-02-30' is not a date like 2026-10-01",
        "line 4: 2026-10-01 is already on line 2",
        "line 5: 2026-10-02 has no name",
        "line 6: working is '2' (1: a make-up working day, 0: a holiday)",
        "line 7: expected date,name[,working], got 1 column(s)",
    ]
    assert err.value.message.startswith("cn.csv: line 3: '2026-02-30' is not a date")
    assert err.value.message.endswith("; nothing imported")
