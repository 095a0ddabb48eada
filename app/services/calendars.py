"""Business calendars: working-time arithmetic over a loaded calendar (no database here).

A calendar says when people work, in its own time zone: intervals per weekday (several a
day, e.g. 09:00-12:00 and 13:00-18:00), shifts (named intervals of 24/7 teams; they may
overlap each other at handover), holidays (whole days off) and extra working days with
their own hours (China's 调休: a weekend day worked to bridge a holiday).

Working time is a set of instants. Each local day's intervals become UTC instants through
zoneinfo, and time is counted as it really passes: a working day that spans a DST change
is an hour shorter or longer. A wall time that does not exist (skipped at the spring
change) means the moment the clock jumps; one that exists twice counts both times.
Every function takes and returns aware datetimes; results are in UTC.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.errors import InvalidInput, NotFound

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DAY_MINUTES = 24 * 60
IDLE_DAYS_LIMIT = 3 * 366  # this long without working time: the calendar has none to give

DEFAULT_NAME = "default"
DEFAULT_TIME_ZONE = "Asia/Shanghai"
DEFAULT_HOURS = ("09:00-12:00", "13:00-18:00")  # Monday to Friday, lunch break 12:00-13:00


# --- building a calendar -----------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Interval:
    """Working time within one local day: minutes after midnight, end exclusive (24:00 = 1440)."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


@dataclass(frozen=True)
class Shift:
    """A named interval of a team's week; a night shift is stored as its two halves."""

    name: str
    weekday: int  # 0 = Monday
    interval: Interval


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _minute(text: str) -> int | None:
    """Minutes after midnight of "HH:MM" (00:00 to 24:00), None if it is not such a time."""
    hh, sep, mm = text.strip().partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and len(mm) == 2 and len(hh) <= 2 and int(mm) < 60):
        return None
    value = int(hh) * 60 + int(mm)
    return value if value <= DAY_MINUTES else None


def parse_interval(text: str | Interval, what: str = "hours", overnight: bool = False) -> list[Interval]:
    """"09:00-12:00" -> [Interval]; with ``overnight``, "22:00-06:00" -> its two halves."""
    if isinstance(text, Interval):
        return [text]
    start_text, _, end_text = str(text).partition("-")
    start, end = _minute(start_text), _minute(end_text)
    if start is None or end is None:
        raise InvalidInput(f"{what}: {text!r} is not an interval like 09:00-12:00 (times from 00:00 to 24:00)")
    if start < end:
        return [Interval(start, end)]
    if overnight and end < start and start < DAY_MINUTES:
        return [Interval(start, DAY_MINUTES)] + ([Interval(0, end)] if end else [])
    raise InvalidInput(f"{what}: {text!r} ends before it starts" + (
        "" if overnight else " (only shifts may run past midnight)"))


def _check_no_overlap(intervals: Iterable[Interval], what: str) -> tuple[Interval, ...]:
    ordered = sorted(intervals)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.start < before.end:
            raise InvalidInput(f"{what}: {before} overlaps {after}")
    return tuple(ordered)


def _union(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    merged: list[Interval] = []
    for iv in sorted(intervals):
        if merged and iv.start <= merged[-1].end:
            merged[-1] = Interval(merged[-1].start, max(merged[-1].end, iv.end))
        else:
            merged.append(iv)
    return tuple(merged)


def zone_info(time_zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise InvalidInput(f"unknown time zone {time_zone!r}: use an IANA name like Asia/Shanghai") from exc


def weekday_number(value: int | str) -> int:
    if isinstance(value, int) and 0 <= value <= 6:
        return value
    text = str(value).strip().lower()
    for number, name in enumerate(WEEKDAYS):
        if text in (name.lower(), name[:3].lower()):
            return number
    raise InvalidInput(f"{value!r} is not a weekday (Monday..Sunday, or 0..6 from Monday)")


@dataclass(frozen=True, eq=False)
class WorkCalendar:
    """A loaded calendar. Build it with ``build_calendar``, which checks what it is given."""

    name: str
    time_zone: str
    hours: tuple[tuple[Interval, ...], ...]  # per weekday, Monday first: plain working hours
    holidays: Mapping[date, str]
    extra_days: Mapping[date, tuple[str, tuple[Interval, ...]]]  # make-up working days: name, hours
    shifts: tuple[Shift, ...] = ()
    title: str = ""
    is_default: bool = False
    zone: ZoneInfo = field(init=False, repr=False)
    week: tuple[tuple[Interval, ...], ...] = field(init=False, repr=False)  # hours and shifts, merged
    _days: dict = field(init=False, repr=False, default_factory=dict)  # {date: UTC spans}

    def __post_init__(self):
        object.__setattr__(self, "zone", zone_info(self.time_zone))
        week = tuple(_union([*self.hours[d], *(s.interval for s in self.shifts if s.weekday == d)])
                     for d in range(7))
        object.__setattr__(self, "week", week)

    def intervals_on(self, day: date) -> tuple[Interval, ...]:
        """The local working intervals of a date: none on a holiday, its own on an extra day."""
        if day in self.holidays:
            return ()
        extra = self.extra_days.get(day)
        if extra is not None:
            return extra[1]
        return self.week[day.weekday()]

    def standard_hours(self) -> tuple[Interval, ...]:
        """The hours most weekdays have (an imported make-up day gets these)."""
        patterns = Counter(self.week[d] for d in range(7) if self.week[d])
        if not patterns:
            return ()
        best = max(patterns.values())
        return next(self.week[d] for d in range(7) if self.week[d] and patterns[self.week[d]] == best)

    def spans_on(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The date's working time as UTC instants [start, end), merged, zero-length ones dropped."""
        spans = self._days.get(day)
        if spans is None:
            found: list[tuple[datetime, datetime]] = []
            for iv in self.intervals_on(day):
                start, end = _utc(self.zone, day, iv.start), _utc(self.zone, day, iv.end)
                if end <= start:
                    continue  # wholly inside a skipped (DST) hour
                if found and start <= found[-1][1]:
                    found[-1] = (found[-1][0], max(found[-1][1], end))
                else:
                    found.append((start, end))
            spans = tuple(found)
            if len(self._days) > 4096:
                self._days.clear()
            self._days[day] = spans
        return spans


def build_calendar(name: str, time_zone: str, hours: Mapping[int | str, Iterable[str | Interval]] | None = None, *,
                   holidays: Mapping[date, str] | None = None,
                   extra_days: Mapping[date, tuple[str, Iterable[str | Interval]]] | None = None,
                   shifts: Iterable[tuple[str, int | str, str | Interval]] = (), title: str = "",
                   is_default: bool = False) -> WorkCalendar:
    """A checked calendar: a known time zone, well-formed intervals that do not overlap (except
    different shifts, which may), and no date that is both a holiday and an extra working day."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("a calendar needs a name")
    where = f"calendar {name!r}"
    zone_info(time_zone)
    week: list[list[Interval]] = [[] for _ in range(7)]
    for day, texts in (hours or {}).items():
        d = weekday_number(day)
        for text in texts:
            week[d].extend(parse_interval(text, f"{where}, {WEEKDAYS[d]}"))
    week_hours = tuple(_check_no_overlap(week[d], f"{where}, {WEEKDAYS[d]}") for d in range(7))

    shift_parts: dict[tuple[str, int], list[Interval]] = {}
    for shift_name, day, text in shifts:
        shift_name = (shift_name or "").strip()
        if not shift_name:
            raise InvalidInput(f"{where}: a shift needs a name")
        d = weekday_number(day)
        # A night shift's second half (after midnight) belongs to the next weekday.
        for next_day, part in enumerate(parse_interval(text, f"{where}, shift {shift_name!r}", overnight=True)):
            shift_parts.setdefault((shift_name, (d + next_day) % 7), []).append(part)
    shift_list = []
    for (shift_name, d), parts in sorted(shift_parts.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        for iv in _check_no_overlap(parts, f"{where}, shift {shift_name!r} on {WEEKDAYS[d]}"):
            shift_list.append(Shift(shift_name, d, iv))

    holiday_map = {_as_date(d, where): (n or "").strip() for d, n in (holidays or {}).items()}
    extra_map = {}
    for d, (day_name, texts) in (extra_days or {}).items():
        day = _as_date(d, where)
        if day in holiday_map:
            raise InvalidInput(f"{where}: {day} is both a holiday and an extra working day")
        what = f"{where}, extra working day {day}"
        parts = [iv for text in texts for iv in parse_interval(text, what)]
        if not parts:
            raise InvalidInput(f"{what}: an extra working day needs working hours")
        extra_map[day] = ((day_name or "").strip(), _check_no_overlap(parts, what))
    return WorkCalendar(name, time_zone, week_hours, dict(sorted(holiday_map.items())),
                        dict(sorted(extra_map.items())), tuple(shift_list), title or "", is_default)


def _as_date(value: date | str, where: str) -> date:
    if isinstance(value, datetime):
        raise InvalidInput(f"{where}: {value!r} is a date and time; holidays are whole dates")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise InvalidInput(f"{where}: {value!r} is not a date like 2026-10-01") from exc


def default_calendar() -> WorkCalendar:
    """What a fresh database starts with: Monday to Friday 09:00-18:00, lunch 12:00-13:00, Shanghai."""
    return build_calendar(DEFAULT_NAME, DEFAULT_TIME_ZONE, {d: DEFAULT_HOURS for d in range(5)},
                          title="Office hours", is_default=True)


class CalendarSet:
    """Calendars by name, and which one is the default."""

    def __init__(self, calendars: Iterable[WorkCalendar]):
        self.by_name = {c.name: c for c in calendars}
        defaults = [c for c in self.by_name.values() if c.is_default]
        self.default_name = defaults[0].name if defaults else None

    def get(self, name: str | None = None) -> WorkCalendar:
        if name is None:
            if self.default_name is None:
                raise NotFound("no default business calendar; mark one as the default")
            return self.by_name[self.default_name]
        found = self.by_name.get(name)
        if found is None:
            known = ", ".join(sorted(self.by_name)) or "none"
            raise NotFound(f"no business calendar {name!r} (known: {known})")
        return found

    def all(self) -> list[WorkCalendar]:
        return [self.by_name[n] for n in sorted(self.by_name)]


# --- local wall time -> UTC ------------------------------------------------------------------

def _utc(zone: ZoneInfo, day: date, minute: int) -> datetime:
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    utc = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first of a repeated wall time
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return utc
    # Skipped by a spring change: the moment the clock jumps. It lies between the readings with
    # the offsets before and after the change; zones change on whole seconds, so halve to one.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after_offset = utc.astimezone(zone).utcoffset()
    while utc - before > timedelta(seconds=1):
        middle = before + timedelta(seconds=(utc - before) // timedelta(seconds=1) // 2)
        if middle.astimezone(zone).utcoffset() == after_offset:
            utc = middle
        else:
            before = middle
    return utc


# --- arithmetic --------------------------------------------------------------------------------

def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} must be a date and time, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} {value.isoformat()} has no time zone; pass an aware datetime")
    return value.astimezone(UTC)


def _duration(hours: float, minutes: float) -> timedelta:
    numbers = []
    for what, value in (("hours", hours), ("minutes", minutes)):
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) or not math.isfinite(value):
            raise InvalidInput(f"{what} must be a number, not {value!r}")
        if value < 0:
            raise InvalidInput(f"{what} must not be negative (got {value})")
        numbers.append(float(value) if isinstance(value, Decimal) else value)
    try:
        return timedelta(hours=numbers[0], minutes=numbers[1])
    except OverflowError as exc:
        raise InvalidInput(f"{hours} hours {minutes} minutes is too long") from exc


def _spans_from(calendar: WorkCalendar, t: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Working spans (UTC) that end after ``t``, in order; endless unless the calendar runs dry."""
    day = t.astimezone(calendar.zone).date()
    idle = 0
    while True:
        spans = calendar.spans_on(day)
        idle = 0 if spans else idle + 1
        if idle > IDLE_DAYS_LIMIT:
            raise InvalidInput(f"calendar {calendar.name!r} has no working time in the {IDLE_DAYS_LIMIT} days "
                               f"after {day - timedelta(days=IDLE_DAYS_LIMIT)}")
        for start, end in spans:
            if end > t:
                yield start, end
        day += timedelta(days=1)


def business_due(calendar: WorkCalendar, start: datetime, hours: float = 0, minutes: float = 0) -> datetime:
    """When ``hours`` + ``minutes`` of working time have passed after ``start``: the earliest
    such moment, so a deadline that uses up an interval exactly ends at its end (12:00, not 13:00)."""
    remaining = _duration(hours, minutes)
    start = _aware(start, "start")
    if not remaining:
        return start
    for span_start, span_end in _spans_from(calendar, start):
        begin = max(span_start, start)
        if remaining <= span_end - begin:
            return begin + remaining
        remaining -= span_end - begin
    raise AssertionError("unreachable: _spans_from never ends")


def plain_due(start: datetime, hours: float = 0, minutes: float = 0) -> datetime:
    """``start`` plus a plain duration: nights, weekends and holidays count like any hour."""
    return _aware(start, "start") + _duration(hours, minutes)


def working_time_between(calendar: WorkCalendar, start: datetime, end: datetime) -> timedelta:
    """Working time from ``start`` to ``end``; negative when ``end`` comes first (an overdue SLA)."""
    start, end = _aware(start, "start"), _aware(end, "end")
    if end < start:
        return -working_time_between(calendar, end, start)
    total = timedelta(0)
    day, last = start.astimezone(calendar.zone).date(), end.astimezone(calendar.zone).date()
    while day <= last:
        for span_start, span_end in calendar.spans_on(day):
            if span_end > start and span_start < end:
                total += min(span_end, end) - max(span_start, start)
        day += timedelta(days=1)
    return total


def is_working_time(calendar: WorkCalendar, at: datetime) -> bool:
    at = _aware(at, "time")
    return any(start <= at < end for start, end in calendar.spans_on(at.astimezone(calendar.zone).date()))


def next_working_time(calendar: WorkCalendar, at: datetime) -> datetime:
    """``at`` itself during working time, else the start of the next working span."""
    at = _aware(at, "time")
    start, _ = next(_spans_from(calendar, at))
    return max(start, at)


def shifts_at(calendar: WorkCalendar, at: datetime) -> list[str]:
    """The shifts on duty at ``at``: none on a holiday, nor on an extra working day (its hours are its own)."""
    local = _aware(at, "time").astimezone(calendar.zone)
    if local.date() in calendar.holidays or local.date() in calendar.extra_days:
        return []
    minute = local.hour * 60 + local.minute
    return sorted({s.name for s in calendar.shifts
                   if s.weekday == local.weekday() and s.interval.start <= minute < s.interval.end})
