"""Business calendars: working hours per weekday, shifts, holidays and extra working days.

Times of day are minutes after local midnight in the calendar's time zone (540 = 09:00,
1440 = 24:00), so an interval can run to the end of a day. A night shift is stored as
its two halves, one on each weekday. The arithmetic lives in ``app.services.calendars``.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow

_INTERVAL = "start_minute >= 0 AND start_minute < end_minute AND end_minute <= 1440"


class Calendar(Base):
    __tablename__ = "calendar"
    __table_args__ = (
        # At most one default calendar.
        Index("uq_calendar_default", "is_default", unique=True,
              sqlite_where=text("is_default"), postgresql_where=text("is_default")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    time_zone: Mapped[str] = mapped_column(String(64))  # IANA name, e.g. Asia/Shanghai
    is_default: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    hours: Mapped[list[CalendarHours]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True,
        order_by="(CalendarHours.weekday, CalendarHours.start_minute)")
    days: Mapped[list[CalendarDay]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="CalendarDay.day")


class CalendarHours(Base):
    """One working interval of a weekday; ``shift`` names the shift it belongs to, if any."""

    __tablename__ = "calendar_hours"
    __table_args__ = (
        CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday"),
        CheckConstraint(_INTERVAL, name="interval"),
        Index("ix_calendar_hours_calendar_id", "calendar_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendar.id", ondelete="CASCADE"))
    weekday: Mapped[int]  # 0 = Monday
    start_minute: Mapped[int]
    end_minute: Mapped[int]
    shift: Mapped[str | None] = mapped_column(String(80))


class CalendarDay(Base):
    """A date that differs from the week: a holiday (whole day off) or an extra working day."""

    __tablename__ = "calendar_day"
    __table_args__ = (UniqueConstraint("calendar_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendar.id", ondelete="CASCADE"))
    day: Mapped[date]
    name: Mapped[str] = mapped_column(String(200), default="")
    working: Mapped[bool] = mapped_column(default=False)  # True: an extra working day, with its hours

    hours: Mapped[list[CalendarDayHours]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="CalendarDayHours.start_minute")


class CalendarDayHours(Base):
    """A working interval of an extra working day."""

    __tablename__ = "calendar_day_hours"
    __table_args__ = (
        CheckConstraint(_INTERVAL, name="interval"),
        Index("ix_calendar_day_hours_day_id", "day_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    day_id: Mapped[int] = mapped_column(ForeignKey("calendar_day.id", ondelete="CASCADE"))
    start_minute: Mapped[int]
    end_minute: Mapped[int]
