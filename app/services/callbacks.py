"""Callbacks: when to call a customer back, inside the business calendar's working hours.

The callback diagram asks ``callback.schedule`` for each call's slot: the first call at the
later of now (plus a short delay, e.g. for a missed call) and the customer's preferred
time; each retry after a growing pause (``DEFAULT_RETRY_DELAYS``: 30 minutes, 2 hours,
then the next working morning). Every slot is moved into the next working time of the
calendar (the default one unless the diagram names another), with the calendar's own
arithmetic (``calendars.next_working_time``). ``callback.settings`` gives the diagram its
limits from the environment unless its data overrides them.

Operations take the current time from the diagram (``now=iso(now())``): the engine's clock
is the one scenario tests move, and services do not import the engine.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.config import SurveySettings
from app.errors import InvalidInput
from app.services import calendar_store
from app.services import calendars as arithmetic
from app.services.calendars import WorkCalendar

from .registry import operation

NEXT_MORNING = "next_morning"
DEFAULT_RETRY_DELAYS = ("PT30M", "PT2H", NEXT_MORNING)
DEFAULT_SLA_HOURS = 2  # working hours a due call may wait before the supervisors hear of it
_DURATION = re.compile(r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
                       r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$")


def parse_duration(text: Any, what: str = "delay") -> timedelta:
    """"PT30M", "PT2H", "P1DT2H", "P1W" as a timedelta (no months or years: they have no fixed length)."""
    match = _DURATION.match(str(text or "").strip().upper())
    if not match or str(text).strip().upper() in ("P", "PT") or str(text).strip().upper().endswith("T"):
        raise InvalidInput(f"{what} {text!r} is not an ISO 8601 duration like PT30M, PT2H or P1D", field=what)
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return timedelta(**parts)


def parse_moment(value: Any, zone, what: str) -> datetime:
    """An ISO date-time; one without an offset is wall time in ``zone`` (the calendar's)."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError as exc:
            raise InvalidInput(f"{what} {value!r} is not an ISO date and time like 2026-01-05T14:00",
                               field=what) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def retry_delay(retry_delays: list[str] | tuple[str, ...] | None, attempts: int) -> str:
    """The pause after the ``attempts``-th unanswered call: the list's entry, its last one after that."""
    delays = list(retry_delays or DEFAULT_RETRY_DELAYS)
    if not delays:
        raise InvalidInput("retry_delays must list at least one delay", field="retry_delays")
    return str(delays[min(max(attempts, 1), len(delays)) - 1])


def next_slot(calendar: WorkCalendar, now: datetime, attempts: int = 0, preferred_at: Any = None,
              delay: str | None = None, retry_delays: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    """When to make the next call (see the module doc); ``attempts`` is the number of calls already made."""
    if attempts < 0:
        raise InvalidInput(f"attempts must not be negative (got {attempts})", field="attempts")
    now = now.astimezone(UTC)
    pause = delay if attempts == 0 else retry_delay(retry_delays, attempts)
    pause = pause or "PT0M"
    if str(pause).strip().lower() == NEXT_MORNING:
        tomorrow = now.astimezone(calendar.zone).date() + timedelta(days=1)
        earliest = datetime.combine(tomorrow, time(), tzinfo=calendar.zone).astimezone(UTC)
    else:
        earliest = now + parse_duration(pause, "delay" if attempts == 0 else "retry_delays")
    preferred = None
    if attempts == 0 and preferred_at not in (None, ""):
        preferred = parse_moment(preferred_at, calendar.zone, "preferred_at")
        earliest = max(earliest, preferred)
    slot = arithmetic.next_working_time(calendar, earliest)
    local = slot.astimezone(calendar.zone)
    return {"at": slot.isoformat(), "local": local.strftime("%Y-%m-%d %H:%M"), "calendar": calendar.name,
            "moved": slot != earliest, "attempt": attempts + 1,
            "preferred_at": preferred.isoformat() if preferred else None}


@operation("callback.schedule")
def schedule(now: str, attempts: int = 0, preferred_at: str | None = None, delay: str | None = None,
             retry_delays: list[str] | None = None, calendar: str | None = None, *,
             _session: Session) -> dict[str, Any]:
    """When to make the next callback call: {at (UTC ISO), local, calendar, moved, attempt, preferred_at}."""
    work_calendar = calendar_store.load_calendars(_session).get(calendar or None)
    moment = parse_moment(now, UTC, "now")
    return next_slot(work_calendar, moment, int(attempts or 0), preferred_at, delay, retry_delays)


@operation("callback.settings")
def settings(max_attempts: int | None = None, sample_rate: float | None = None, min_days: int | None = None,
             low_score: int | None = None, sla_hours: float | None = None) -> dict[str, Any]:
    """The callback's limits: each given value (from the diagram's data) wins over the environment's.

    ``sla_hours``: working hours a call may wait once its slot came (default ``DEFAULT_SLA_HOURS``)."""
    defaults = SurveySettings.from_env()
    chosen = {
        "max_attempts": defaults.max_attempts if max_attempts is None else max_attempts,
        "sample_rate": defaults.sample_rate if sample_rate is None else sample_rate,
        "min_days": defaults.min_days if min_days is None else min_days,
        "low_score": defaults.low_score if low_score is None else low_score,
    }
    for name, low, high in (("max_attempts", 1, 20), ("min_days", 0, 3650), ("low_score", 1, 5)):
        value = chosen[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(f"{name} must be a whole number from {low} to {high} (got {value!r})", field=name)
    rate = chosen["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise InvalidInput(f"sample_rate must be a number from 0 to 1 (got {rate!r})", field="sample_rate")
    chosen["sample_rate"] = float(rate)
    sla = DEFAULT_SLA_HOURS if sla_hours is None else sla_hours
    if isinstance(sla, bool) or not isinstance(sla, (int, float)) or not 0 < sla <= 24 * 7:
        raise InvalidInput(f"sla_hours must be a number of working hours above 0 (got {sla!r})", field="sla_hours")
    chosen["sla_hours"] = sla
    return chosen
