"""What instances wait for: people (human tasks), time (timers) and messages."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, ForeignKey, Index, String, Text, UniqueConstraint, false, or_
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .instance import ProcessInstance


class TaskStatus:
    OPEN = "open"  # ready, nobody has claimed it
    CLAIMED = "claimed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"  # the process moved on without it (boundary event, terminate)

    ACTIVE = (OPEN, CLAIMED)


class HumanTask(Base):
    """One row per user task the engine made ready. Inbox queries read only this table."""

    __tablename__ = "human_task"
    __table_args__ = (
        UniqueConstraint("spiff_task_id"),
        Index("ix_human_task_status_assignee", "status", "assignee"),
        Index("ix_human_task_instance_id", "instance_id"),
        # Late work: active tasks past their due time (supervisors' overdue lists, sweeps).
        Index("ix_human_task_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"))
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    candidate_groups: Mapped[list[Any]] = mapped_column(default=list)
    candidate_users: Mapped[list[Any]] = mapped_column(default=list)
    assignee: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default=TaskStatus.OPEN)
    form_key: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(default=50)
    due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(80))
    # Escalation (app/services/escalation.py): how many levels up the task has gone, and whether
    # an SLA timer fired on it. A task past due_at with no escalation is late too (is_late).
    escalation_level: Mapped[int] = mapped_column(default=0, server_default="0")
    overdue: Mapped[bool] = mapped_column(default=False, server_default=false())

    instance: Mapped[ProcessInstance] = relationship()
    candidates: Mapped[list[TaskCandidate]] = relationship(cascade="all, delete-orphan", passive_deletes=True)

    def offer_to(self, groups: list[str], users: list[str]) -> None:
        """Who may claim the task: the JSON columns shown to people and the indexed candidate rows."""
        self.candidate_groups, self.candidate_users = list(groups), list(users)
        kept = {(c.kind, c.name): c for c in self.candidates}
        self.candidates = [kept.get(key) or TaskCandidate(kind=key[0], name=key[1])
                           for key in self.candidate_keys(groups, users)]

    @staticmethod
    def candidate_keys(groups: list[str], users: list[str]) -> list[tuple[str, str]]:
        """The ``task_candidate`` rows (kind, name) of a task offered to these groups and users."""
        return [("group", g) for g in dict.fromkeys(groups)] + [("user", u) for u in dict.fromkeys(users)]

    def is_late(self, now: datetime) -> bool:
        """Escalated by an SLA timer, or still open past its due time (``late_at`` in SQL)."""
        return self.overdue or (self.status in TaskStatus.ACTIVE and self.due_at is not None and self.due_at < now)

    @classmethod
    def late_at(cls, now: datetime) -> ColumnElement[bool]:
        """``is_late`` as a WHERE clause, for lists of late work."""
        return or_(cls.overdue.is_(True), cls.status.in_(TaskStatus.ACTIVE) & (cls.due_at < now))


class TaskCandidate(Base):
    """Who may claim a task (a group or a user), so inbox queries are indexed joins."""

    __tablename__ = "task_candidate"
    __table_args__ = (Index("ix_task_candidate_kind_name", "kind", "name"),)

    task_id: Mapped[int] = mapped_column(ForeignKey("human_task.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)  # "group" or "user"
    name: Mapped[str] = mapped_column(String(80), primary_key=True)


class Timer(Base):
    __tablename__ = "timer"
    __table_args__ = (
        Index("ix_timer_due_at", "due_at"),
        Index("ix_timer_instance_id", "instance_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"))
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime]


class MessageSubscription(Base):
    """An instance waiting for a message; correlation holds the values it expects."""

    __tablename__ = "message_subscription"
    __table_args__ = (
        Index("ix_message_subscription_name_key", "message_name", "correlation_key"),
        Index("ix_message_subscription_instance_id", "instance_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"))
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(200))
    message_name: Mapped[str] = mapped_column(String(200))
    correlation: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {property: value}
    correlation_key: Mapped[str] = mapped_column(Text, default="")  # canonical form of correlation
    retrieval: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {property: retrieval expression}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BufferedMessage(Base):
    """A message that found no receiver yet; kept until it expires."""

    __tablename__ = "message"
    __table_args__ = (Index("ix_message_name_expires", "message_name", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_name: Mapped[str] = mapped_column(String(200))
    correlation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    sent_by: Mapped[str | None] = mapped_column(String(80))


