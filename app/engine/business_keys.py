"""Business keys people can read out on the phone: WO-2026-000123."""
from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import BusinessKeyCounter

from . import clock


def next_business_key(session: Session, prefix: str) -> str:
    year = clock.now().year
    for _ in range(3):
        value = session.scalar(
            update(BusinessKeyCounter)
            .where(BusinessKeyCounter.prefix == prefix, BusinessKeyCounter.year == year)
            .values(value=BusinessKeyCounter.value + 1)
            .returning(BusinessKeyCounter.value)
        )
        if value is not None:
            return f"{prefix}-{year}-{value:06d}"
        try:
            with session.begin_nested():
                session.add(BusinessKeyCounter(prefix=prefix, year=year, value=1))
            return f"{prefix}-{year}-{1:06d}"
        except IntegrityError:
            continue  # another transaction created the counter first: increment it
    raise RuntimeError(f"could not allocate a business key for prefix {prefix!r}")
