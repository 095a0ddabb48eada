"""Process schedules: when a process whose start event is a timer starts next.

One row per timer start event of a deployed process (model + start element id), kept in
step with the model's latest version by deploy. The workers start due rows and move
``next_due_at`` on in the same transaction, so a slot is started once.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .process import ProcessModel


class ScheduleKind:
    CYCLE = "cycle"  # timeCycle: an ISO 8601 repeating interval, R[n]/[start/]duration
    DATE = "date"  # timeDate: once, at that moment
    DURATION = "duration"  # timeDuration: once, that long after deploy

    ALL = (CYCLE, DATE, DURATION)


class ProcessSchedule(Base):
    __tablename__ = "process_schedule"
    __table_args__ = (
        UniqueConstraint("model_id", "element_id"),
        Index("ix_process_schedule_next_due_at", "next_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("process_model.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("process_version.id", ondelete="CASCADE"))
    element_id: Mapped[str] = mapped_column(String(200))  # the timer start event
    kind: Mapped[str] = mapped_column(String(10))  # ScheduleKind
    expression: Mapped[str] = mapped_column(Text)  # as written in the diagram (a Python expression)
    timer: Mapped[str] = mapped_column(String(200))  # what it evaluated to at deploy, e.g. R/P1D
    period: Mapped[str | None] = mapped_column(String(60))  # a cycle's ISO 8601 duration
    remaining: Mapped[int | None]  # starts left (None: for ever)
    next_due_at: Mapped[datetime | None]  # None: nothing left to start, or disabled
    last_started_at: Mapped[datetime | None]
    last_instance_id: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(default=True)  # False: the latest version has no such timer start
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[ProcessModel] = relationship()
