"""Business keys people can read out on the phone: WO-2026-000123."""
from __future__ import annotations

from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import BusinessKeyCounter, ProcessModel

from . import clock

_COUNTER = BusinessKeyCounter.__table__
_BUMP = (update(_COUNTER)  # a plain statement, not the ORM's: one of the few on every start
         .where(_COUNTER.c.prefix == bindparam("counter_prefix"), _COUNTER.c.year == bindparam("counter_year"))
         .values(value=_COUNTER.c.value + 1)
         .returning(_COUNTER.c.value))

_MODEL = ProcessModel.__table__
# The same counter, found through the process's key: a start learns its process's latest
# version and takes a ticket number in one round trip.
_BUMP_FOR_PROCESS = (update(_COUNTER)
                     .where(_COUNTER.c.prefix == _MODEL.c.business_key_prefix, _MODEL.c.key == bindparam("b_key"),
                            _COUNTER.c.year == bindparam("counter_year"))
                     .values(value=_COUNTER.c.value + 1)
                     .returning(_COUNTER.c.value, _COUNTER.c.prefix, _MODEL.c.latest_version_id, _MODEL.c.title))


def format_key(prefix: str, year: int, value: int) -> str:
    return f"{prefix}-{year}-{value:06d}"


def next_business_key_for(session: Session, process_key: str) -> tuple[str, int, str] | None:
    """(business key, latest version id, title) for a new instance of ``process_key``; None when
    the process is not deployed or has no counter for this year yet (the caller then reads the
    model and calls ``next_business_key``)."""
    if session.get_bind().dialect.name != "postgresql":
        return None  # SQLite's RETURNING cannot name the FROM table; its round trips cost nothing anyway
    year = clock.now().year
    row = session.execute(_BUMP_FOR_PROCESS, {"b_key": process_key, "counter_year": year}).first()
    if row is None or row.latest_version_id is None:
        return None  # nothing deployed: the caller's NotFound rolls the bump back
    return format_key(row.prefix, year, row.value), row.latest_version_id, row.title


def next_business_key(session: Session, prefix: str) -> str:
    year = clock.now().year
    for _ in range(3):
        value = session.execute(_BUMP, {"counter_prefix": prefix, "counter_year": year}).scalar()
        if value is not None:
            return format_key(prefix, year, value)
        try:
            with session.begin_nested():
                session.add(BusinessKeyCounter(prefix=prefix, year=year, value=1))
            return format_key(prefix, year, 1)
        except IntegrityError:
            continue  # another transaction created the counter first: increment it
    raise RuntimeError(f"could not allocate a business key for prefix {prefix!r}")
