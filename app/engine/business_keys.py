"""Business keys people can read out on the phone: WO-2026-000123."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import BusinessKeyCounter

from . import clock
from .records import InstanceRecord

_COUNTER = BusinessKeyCounter.__table__
_BUMP = (update(_COUNTER)  # a plain statement, not the ORM's: one of the few on every start
         .where(_COUNTER.c.prefix == bindparam("counter_prefix"), _COUNTER.c.year == bindparam("counter_year"))
         .values(value=_COUNTER.c.value + 1)
         .returning(_COUNTER.c.value))


def format_key(prefix: str, year: int, value: int) -> str:
    return f"{prefix}-{year}-{value:06d}"


# A start's first statement on PostgreSQL: take the next ticket number of the process's
# counter, learn its latest version, and insert the instance, in one round trip. The key is
# format_key's, in SQL (tests/test_business_keys.py holds them to each other).
_NUMBERED_INSTANCE = """
WITH counter AS (
    UPDATE business_key_counter AS c SET value = c.value + 1
    FROM process_model AS m
    WHERE c.prefix = m.business_key_prefix AND c.year = %(year)s AND m.key = %(key)s
      AND m.latest_version_id IS NOT NULL
    RETURNING c.value, c.prefix, m.latest_version_id, m.title)
INSERT INTO process_instance (version_id, business_key, title, status, state, priority, started_by,
                              started_at, updated_at, lock_version)
SELECT latest_version_id,
       prefix || '-' || %(year_text)s || '-' || lpad(value::text, greatest(6, length(value::text)), '0'),
       left(coalesce(nullif(%(title)s, ''), nullif(title, ''), %(key)s), 300),
       %(status)s, '', %(priority)s, %(started_by)s, %(now)s, %(now)s, 1
FROM counter
RETURNING id, version_id, business_key, title
"""


def insert_numbered_instance(session: Session, process_key: str, *, title: str | None, status: str,
                             priority: int, started_by: str, now: datetime) -> InstanceRecord | None:
    """The new instance of ``process_key``'s latest version with the next ticket number, its
    title ``title`` or the process's; None when the process is not deployed, has no counter
    for this year yet, or the database is not PostgreSQL (the caller then goes step by step)."""
    if session.get_bind().dialect.name != "postgresql":
        return None  # SQLite's RETURNING cannot name the FROM table; its round trips cost nothing anyway
    year = now.year
    row = session.connection().exec_driver_sql(_NUMBERED_INSTANCE, {
        "key": process_key, "year": year, "year_text": str(year), "title": title, "status": status,
        "priority": priority, "started_by": started_by, "now": now}).first()
    if row is None:
        return None
    return InstanceRecord(id=row.id, version_id=row.version_id, business_key=row.business_key, title=row.title,
                          status=status, customer_id=None, priority=priority, lock_version=1,
                          started_by=started_by, started_at=now, ended_at=None)


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
