"""Work the engine hands to workers: asynchronous service tasks and thrown messages.

Both tables are the source of truth for what is due; RQ jobs are only the fast path and
the periodic sweep runs whatever a lost job missed.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class ServiceJobStatus:
    PENDING = "pending"  # waiting for its next attempt (next_attempt_at)
    RUNNING = "running"  # a worker holds the lease and calls the operation
    DONE = "done"  # the operation succeeded (result kept); the instance has not moved on yet
    FAILED = "failed"  # given up: an incident waits for a manager's retry

    DUE = (PENDING, RUNNING, DONE)


class ServiceJob(Base):
    """One asynchronous service task an instance waits at (one row per waiting Spiff task)."""

    __tablename__ = "service_job"
    __table_args__ = (
        UniqueConstraint("spiff_task_id"),
        Index("ix_service_job_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_service_job_instance_id", "instance_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"))
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(200))
    operation: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)  # evaluated, in the serializer's JSON form
    max_attempts: Mapped[int] = mapped_column(default=4)  # retries + 1
    backoff_seconds: Mapped[float] = mapped_column(Float, default=10.0)  # doubles after each failure
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default=ServiceJobStatus.PENDING)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_expires_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)  # {"value": ...} once DONE
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ThrownMessage(Base):
    """A message a process threw that nothing inside its own workflow caught: delivered once."""

    __tablename__ = "thrown_message"
    __table_args__ = (
        Index("ix_thrown_message_delivered_at_id", "delivered_at", "id"),
        Index("ix_thrown_message_instance_id", "instance_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instance.id", ondelete="SET NULL"))
    sender_business_key: Mapped[str] = mapped_column(String(80))
    element_id: Mapped[str | None] = mapped_column(String(200))
    message_name: Mapped[str] = mapped_column(String(200))
    correlation: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {property: value}
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)  # in the serializer's JSON form
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    outcome: Mapped[dict[str, Any] | None] = mapped_column(default=None)  # what correlate did
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
