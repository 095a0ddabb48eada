"""Business calendars in the database: load them for the arithmetic, keep a default, import holidays.

A fresh database gets its default calendar lazily, the first time calendars are read
(``ensure_default``), from the one definition in ``calendars.default_calendar()``.
"""
from __future__ import annotations

import csv
import io
from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.errors import InvalidInput, NotFound
from app.models import Calendar, CalendarDay, CalendarDayHours, CalendarHours, utcnow

from .calendars import DEFAULT_NAME, WEEKDAYS, CalendarSet, Interval, WorkCalendar, build_calendar, default_calendar

_TRUE, _FALSE = {"1", "true", "yes", "y"}, {"", "0", "false", "no", "n"}


# --- rows <-> WorkCalendar -----------------------------------------------------------------

def to_work_calendar(row: Calendar) -> WorkCalendar:
    hours: dict[int, list[str]] = {}
    shifts = []
    for h in row.hours:
        iv = Interval(h.start_minute, h.end_minute)
        if h.shift:
            shifts.append((h.shift, h.weekday, iv))
        else:
            hours.setdefault(h.weekday, []).append(iv)
    holidays = {d.day: d.name for d in row.days if not d.working}
    extra = {d.day: (d.name, [Interval(h.start_minute, h.end_minute) for h in d.hours]) for d in row.days if d.working}
    return build_calendar(row.name, row.time_zone, hours, holidays=holidays, extra_days=extra, shifts=shifts,
                          title=row.title, is_default=row.is_default)


def _day_row(day: date, name: str, hours: tuple[Interval, ...] | None) -> CalendarDay:
    return CalendarDay(day=day, name=name[:200], working=hours is not None,
                       hours=[CalendarDayHours(start_minute=iv.start, end_minute=iv.end) for iv in hours or ()])


def save_calendar(session: Session, calendar: WorkCalendar) -> Calendar:
    """Create or replace the calendar of that name with everything ``calendar`` holds."""
    if calendar.is_default:
        for other in session.scalars(select(Calendar).where(Calendar.is_default.is_(True),
                                                            Calendar.name != calendar.name)):
            other.is_default = False
        session.flush()  # one default at a time, also inside this transaction
    row = session.scalar(select(Calendar).where(Calendar.name == calendar.name))
    if row is None:
        row = Calendar(name=calendar.name)
        session.add(row)
    row.title, row.time_zone, row.is_default, row.updated_at = (calendar.title, calendar.time_zone,
                                                                calendar.is_default, utcnow())
    row.hours = [CalendarHours(weekday=d, start_minute=iv.start, end_minute=iv.end)
                 for d in range(7) for iv in calendar.hours[d]]
    row.hours += [CalendarHours(weekday=s.weekday, start_minute=s.interval.start, end_minute=s.interval.end,
                                shift=s.name) for s in calendar.shifts]
    row.days = []
    session.flush()  # the old days go before new ones take their (calendar, day) keys
    row.days = ([_day_row(d, n, None) for d, n in calendar.holidays.items()]
                + [_day_row(d, n, hours) for d, (n, hours) in calendar.extra_days.items()])
    session.flush()
    return row


def ensure_default(session: Session) -> bool:
    """Give a database without a default calendar the built-in one; True if it was created now.

    Once a calendar named "default" exists it is never recreated, even if another became the default.
    """
    exists = select(Calendar.id).where(or_(Calendar.is_default.is_(True), Calendar.name == DEFAULT_NAME)).limit(1)
    if session.scalar(exists) is not None:
        return False
    try:
        with session.begin_nested():  # another process may create it at the same moment
            save_calendar(session, default_calendar())
    except IntegrityError:
        if session.scalar(exists) is None:
            raise  # not that race: a real error
        return False
    return True


def load_calendars(session: Session) -> CalendarSet:
    ensure_default(session)
    rows = session.scalars(select(Calendar).options(
        selectinload(Calendar.hours), selectinload(Calendar.days).selectinload(CalendarDay.hours))).all()
    return CalendarSet(to_work_calendar(r) for r in rows)


def calendar_row(session: Session, name: str | None = None) -> Calendar:
    """The calendar of that name (default: the default calendar)."""
    ensure_default(session)
    q = select(Calendar).where(Calendar.name == name) if name else select(Calendar).where(Calendar.is_default.is_(True))
    row = session.scalar(q)
    if row is None:
        known = ", ".join(session.scalars(select(Calendar.name).order_by(Calendar.name))) or "none"
        raise NotFound(f"no business calendar {name!r} (known: {known})" if name else
                       "no default business calendar; mark one as the default")
    return row


# --- holidays from CSV -------------------------------------------------------------------------

def parse_days_csv(text: str, source: str = "file") -> list[tuple[int, date, str, bool]]:
    """Rows ``date,name[,working]`` (a header line is optional) -> [(line, date, name, working)].

    Every bad row is reported, with its line number, in one error.
    """
    rows, problems, seen = [], [], {}
    for line_no, cells in _csv_lines(text):
        cells = [c.strip() for c in cells]
        if line_no == 1 and cells and cells[0].lower() == "date":
            continue
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) not in (2, 3):
            problems.append(f"line {line_no}: expected date,name[,working], got {len(cells)} column(s)")
            continue
        day_text, name, working_text = cells[0], cells[1], (cells[2] if len(cells) == 3 else "")
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            problems.append(f"line {line_no}: {day_text!r} is not a date like 2026-10-01")
            continue
        if not name:
            problems.append(f"line {line_no}: {day} has no name")
            continue
        if working_text.lower() not in _TRUE | _FALSE:
            problems.append(f"line {line_no}: working is {working_text!r} (1: a make-up working day, 0: a holiday)")
            continue
        if day in seen:
            problems.append(f"line {line_no}: {day} is already on line {seen[day]}")
            continue
        seen[day] = line_no
        rows.append((line_no, day, name, working_text.lower() in _TRUE))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise InvalidInput(f"{source}: {shown}; nothing imported", problems=problems)
    return rows


def _csv_lines(text: str):
    reader = csv.reader(io.StringIO(text))
    try:
        for cells in reader:
            yield reader.line_num, cells
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: not valid CSV: {exc}; nothing imported") from exc


def import_days(session: Session, text: str, calendar_name: str | None = None, source: str = "file") -> dict:
    """Import holidays and make-up working days into a calendar: all rows or none.

    A date already in the calendar is replaced. A make-up day works the calendar's standard hours.
    """
    rows = parse_days_csv(text, source)
    row = calendar_row(session, calendar_name)
    current = to_work_calendar(row)
    standard = current.standard_hours()
    if any(working for *_, working in rows) and not standard:
        raise InvalidInput(f"calendar {row.name!r} has no weekly hours to give a make-up working day; "
                           "nothing imported")
    holidays = {d: n for d, n in current.holidays.items()}
    extra = {d: (n, hours) for d, (n, hours) in current.extra_days.items()}
    replaced = 0
    for _, day, name, working in rows:
        replaced += day in holidays or day in extra
        holidays.pop(day, None)
        extra.pop(day, None)
        if working:
            extra[day] = (name, standard)
        else:
            holidays[day] = name
    updated = build_calendar(current.name, current.time_zone, dict(enumerate(current.hours)),
                             holidays=holidays, extra_days=extra,
                             shifts=[(s.name, s.weekday, s.interval) for s in current.shifts],
                             title=current.title, is_default=current.is_default)
    save_calendar(session, updated)
    return {"calendar": row.name, "imported": len(rows), "holidays": sum(not w for *_, w in rows),
            "working_days": sum(w for *_, w in rows), "replaced": replaced}


# --- what people read ------------------------------------------------------------------------------

def _hours_text(intervals) -> str:
    return ", ".join(map(str, intervals)) or "-"


def summary(calendar: WorkCalendar) -> dict:
    return {"name": calendar.name, "title": calendar.title, "time_zone": calendar.time_zone,
            "default": calendar.is_default,
            "week": {WEEKDAYS[d]: _hours_text(calendar.week[d]) for d in range(7)},
            "shifts": sorted({s.name for s in calendar.shifts}),
            "holidays": len(calendar.holidays), "working_days": len(calendar.extra_days)}


def detail(calendar: WorkCalendar) -> dict:
    return {
        **summary(calendar),
        "hours": {WEEKDAYS[d]: [str(iv) for iv in calendar.hours[d]] for d in range(7)},
        "shifts": [{"name": s.name, "weekday": WEEKDAYS[s.weekday], "hours": str(s.interval)}
                   for s in calendar.shifts],
        "holidays": [{"date": d.isoformat(), "name": n} for d, n in calendar.holidays.items()],
        "working_days": [{"date": d.isoformat(), "name": n, "hours": [str(iv) for iv in hours]}
                         for d, (n, hours) in calendar.extra_days.items()],
    }
