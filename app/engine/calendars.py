"""Business calendars for BPMN scripts, conditions, timer expressions and due dates.

Calendars live in the database, not in a process version, so one ``CalendarProvider`` per
engine serves every version's script engine. It keeps a snapshot for ``ttl_seconds``
(other processes' changes show up within that time) and is refreshed by ``SpecCache.get``
with the session of the engine transaction that is about to run scripts: a second
connection would wait forever on SQLite's write lock, which that transaction holds.
Changes made in this process (the CLI) call ``invalidate()`` and show up at once.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session

from app.db import Database
from app.services import calendar_store
from app.services import calendars as arithmetic
from app.services.calendars import CalendarSet, WorkCalendar

from . import clock


class Calendars(Protocol):
    def get(self, name: str | None = None) -> WorkCalendar: ...


class CalendarProvider:
    def __init__(self, db: Database, ttl_seconds: float = 30.0):
        self.db = db
        self.ttl_seconds = ttl_seconds
        self._snapshot: CalendarSet | None = None
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def refresh(self, session: Session, force: bool = False) -> None:
        """Reload from ``session`` when the snapshot is older than the TTL (or invalidated)."""
        if not force and time.monotonic() - self._loaded_at < self.ttl_seconds:
            return
        snapshot = calendar_store.load_calendars(session)
        with self._lock:
            self._snapshot, self._loaded_at = snapshot, time.monotonic()

    def invalidate(self) -> None:
        """The next engine transaction reloads. Until then scripts keep the old snapshot (never a
        load of their own in the middle of a transaction)."""
        with self._lock:
            self._loaded_at = float("-inf")

    def get(self, name: str | None = None) -> WorkCalendar:
        """A calendar from the last refresh's snapshot (None: the default calendar)."""
        snapshot = self._snapshot
        if snapshot is None:  # used before any engine transaction: outside one, so a load is safe
            with self.db.transaction() as s:
                self.refresh(s, force=True)
            snapshot = self._snapshot
        return snapshot.get(name)


BUILTIN = CalendarSet([arithmetic.default_calendar()])
"""Script engines made without a provider (tools, the module-level engine) see the default calendar."""


def script_helpers(calendars: Calendars | None, parse: Callable[[Any], datetime]) -> dict[str, Callable]:
    """business_due(hours=4) and friends; ``parse`` reads datetimes the way every script helper does."""
    source = calendars or BUILTIN

    def at_or_now(value: Any) -> datetime:
        return clock.now() if value is None else parse(value)

    def business_due(hours: float = 0, minutes: float = 0, *, start: Any = None,
                     calendar: str | None = None) -> datetime:
        """When ``hours``/``minutes`` of working time after ``start`` (default now) have passed, in UTC."""
        return arithmetic.business_due(source.get(calendar), at_or_now(start), hours, minutes)

    def business_duration(hours: float = 0, minutes: float = 0, *, calendar: str | None = None) -> str:
        """business_due(...) from now as an ISO duration, for a timeDuration timer: "PT226800S"."""
        now = clock.now()
        return iso_duration(arithmetic.business_due(source.get(calendar), now, hours, minutes) - now)

    def plain_due(hours: float = 0, minutes: float = 0, *, start: Any = None) -> datetime:
        """``start`` (default now) plus a plain duration: nights and weekends count."""
        return arithmetic.plain_due(at_or_now(start), hours, minutes)

    def working_hours_between(start: Any, end: Any = None, *, calendar: str | None = None) -> float:
        """Working hours from ``start`` to ``end`` (default now); negative once ``end`` is earlier."""
        between = arithmetic.working_time_between(source.get(calendar), parse(start), at_or_now(end))
        return between / timedelta(hours=1)

    def is_working_time(at: Any = None, *, calendar: str | None = None) -> bool:
        return arithmetic.is_working_time(source.get(calendar), at_or_now(at))

    def next_working_time(at: Any = None, *, calendar: str | None = None) -> datetime:
        return arithmetic.next_working_time(source.get(calendar), at_or_now(at))

    return {f.__name__: f for f in (business_due, business_duration, plain_due, working_hours_between,
                                    is_working_time, next_working_time)}


def iso_duration(delta: timedelta) -> str:
    """A non-negative timedelta as an ISO 8601 duration SpiffWorkflow reads exactly: PT14400S."""
    micros = delta // timedelta(microseconds=1)
    if micros < 0:
        raise ValueError(f"negative duration {delta}")
    seconds, fraction = divmod(micros, 1_000_000)
    return f"PT{seconds}.{fraction:06d}S" if fraction else f"PT{seconds}S"
