"""Running and finished process instances, their history and their incidents."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .process import ProcessVersion


class InstanceStatus:
    RUNNING = "running"  # engine work pending (only inside a transaction)
    WAITING = "waiting"  # waits for people, timers or messages
    COMPLETED = "completed"
    ERROR = "error"  # an open incident stops it
    SUSPENDED = "suspended"
    TERMINATED = "terminated"

    ALL = (RUNNING, WAITING, COMPLETED, ERROR, SUSPENDED, TERMINATED)
    ENDED = (COMPLETED, TERMINATED)


class ProcessInstance(Base):
    __tablename__ = "process_instance"
    __table_args__ = (
        Index("ix_process_instance_status", "status"),
        Index("ix_process_instance_version_id", "version_id"),
        Index("ix_process_instance_customer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("process_version.id"))
    business_key: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(20))
    customer_id: Mapped[int | None]
    priority: Mapped[int] = mapped_column(default=50)
    # The serialized workflow, without the spec; deferred: lists never need it.
    state: Mapped[str] = mapped_column(Text, deferred=True)
    lock_version: Mapped[int] = mapped_column(default=1)
    started_by: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]

    version: Mapped[ProcessVersion] = relationship()

    __mapper_args__ = {"version_id_col": lock_version}


class InstanceEvent(Base):
    """Append-only history: what happened to an instance, when, and who did it."""

    __tablename__ = "instance_event"
    __table_args__ = (Index("ix_instance_event_instance_id_id", "instance_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    element_id: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str | None] = mapped_column(String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Incident(Base):
    """A failed step: the error, and the action to replay when someone retries it."""

    __tablename__ = "incident"
    __table_args__ = (Index("ix_incident_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"))
    process_key: Mapped[str] = mapped_column(String(200))
    element_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str] = mapped_column(Text)
    action: Mapped[dict[str, Any]]  # {"name": "complete", ...arguments}
    status: Mapped[str] = mapped_column(String(20), default="open")  # open, resolved
    attempts: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(80))

    instance: Mapped[ProcessInstance | None] = relationship()
