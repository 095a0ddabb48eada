"""Satisfaction surveys: one row per survey a callback asks a customer for, and its answer.

The row is written when a survey callback is sampled (``outcome`` pending, ``asked_at``),
so a customer who is being asked, or was asked lately, is not picked again
(``HOTLINE_SURVEY_MIN_DAYS``). When the callback ends it gets its outcome: answered (with
the score, comment and whether the issue was resolved), refused, wrong_number or
unreachable. Reports read only this table: the callback's process data ends with it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class SurveyOutcome:
    PENDING = "pending"  # sampled; the call has not ended yet
    ANSWERED = "answered"
    REFUSED = "refused"
    WRONG_NUMBER = "wrong_number"
    UNREACHABLE = "unreachable"

    ALL = (PENDING, ANSWERED, REFUSED, WRONG_NUMBER, UNREACHABLE)
    CLOSED = (ANSWERED, REFUSED, WRONG_NUMBER, UNREACHABLE)


SCORES = (1, 2, 3, 4, 5)


class SurveyResult(Base):
    __tablename__ = "survey_result"
    __table_args__ = (
        CheckConstraint("outcome IN ('pending', 'answered', 'refused', 'wrong_number', 'unreachable')",
                        name="outcome"),
        CheckConstraint("score IS NULL OR (score >= 1 AND score <= 5)", name="score"),
        CheckConstraint("language IN ('en', 'zh')", name="language"),
        Index("ix_survey_result_customer_id_asked_at", "customer_id", "asked_at"),
        Index("ix_survey_result_answered_at", "answered_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="SET NULL"))
    # The callback ticket that asks (one survey per callback: a retried step finds its row).
    instance_id: Mapped[int | None] = mapped_column(unique=True)
    business_key: Mapped[str] = mapped_column(String(40), default="")
    source_ticket: Mapped[str] = mapped_column(String(40), default="")  # the ticket the survey is about
    process: Mapped[str] = mapped_column(String(100), default="")  # the source ticket's process key
    group_name: Mapped[str] = mapped_column(String(100), default="")  # the team whose work is rated
    outcome: Mapped[str] = mapped_column(String(20), default=SurveyOutcome.PENDING)
    score: Mapped[int | None] = mapped_column(SmallInteger)
    comment: Mapped[str] = mapped_column(Text, default="")
    resolved: Mapped[bool | None]
    language: Mapped[str] = mapped_column(String(2), default="zh")
    agent: Mapped[str | None] = mapped_column(String(80))
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
