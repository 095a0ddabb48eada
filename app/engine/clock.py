"""The engine's clock. Real time in production; tests and scenarios move it by hand.

SpiffWorkflow's timers read ``datetime.now(timezone.utc)`` from their own module, so
``install()`` points that name at a datetime whose ``now()`` asks this clock. Nothing
sleeps: advancing the clock and firing due timers is how time passes in tests.
"""
from __future__ import annotations

import datetime as _dt
import threading

from SpiffWorkflow.bpmn.specs.event_definitions import timer as _spiff_timer

_lock = threading.Lock()
_offset = _dt.timedelta(0)
_frozen: _dt.datetime | None = None


def now() -> _dt.datetime:
    """Current time, timezone-aware UTC."""
    if _frozen is not None:
        return _frozen
    return _dt.datetime.now(_dt.UTC) + _offset


def freeze(at: _dt.datetime | None = None) -> _dt.datetime:
    """Stop the clock (at ``at``, or now) until ``advance`` or ``reset``."""
    global _frozen
    with _lock:
        at = at or now()
        if at.tzinfo is None:
            raise ValueError("freeze() needs an aware datetime")
        _frozen = at.astimezone(_dt.UTC)
        return _frozen


def advance(seconds: float = 0, **delta) -> _dt.datetime:
    """Move the clock forward: frozen clocks stay frozen, running ones get an offset."""
    global _frozen, _offset
    step = _dt.timedelta(seconds=seconds, **delta)
    with _lock:
        if _frozen is not None:
            _frozen = _frozen + step
        else:
            _offset = _offset + step
    return now()


def reset() -> None:
    global _frozen, _offset
    with _lock:
        _frozen, _offset = None, _dt.timedelta(0)


class _ClockDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        current = now()
        return current.astimezone(tz) if tz is not None else current.astimezone().replace(tzinfo=None)

    @classmethod
    def utcnow(cls):
        return now().replace(tzinfo=None)


def install() -> None:
    _spiff_timer.datetime = _ClockDatetime


install()
