"""Deployed processes: a model per BPMN process (or collaboration) id, a version per change."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow


class ProcessModel(Base):
    __tablename__ = "process_model"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(300), default="")
    file: Mapped[str] = mapped_column(String(500))
    business_key_prefix: Mapped[str] = mapped_column(String(20))
    latest_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("process_version.id", use_alter=True, name="fk_process_model_latest_version")
    )

    latest_version: Mapped[ProcessVersion | None] = relationship(foreign_keys=[latest_version_id])


class ProcessVersion(Base):
    __tablename__ = "process_version"
    __table_args__ = (UniqueConstraint("model_id", "number"), UniqueConstraint("model_id", "sha256"))

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("process_model.id"))
    number: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    dialect: Mapped[str] = mapped_column(String(20))  # "spiff" or "camunda": which parser reads it
    files: Mapped[dict[str, Any]]  # {file name: BPMN/DMN text}: everything needed to rebuild the spec
    elements: Mapped[dict[str, Any]]  # {element id: name, lane, assignment, form key, ...}
    deployed_by: Mapped[str] = mapped_column(String(80))
    deployed_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[ProcessModel] = relationship(foreign_keys=[model_id])


class MessageStart(Base):
    """Which deployed versions a message of this name starts (message start events)."""

    __tablename__ = "message_start"
    __table_args__ = (Index("ix_message_start_name", "message_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("process_version.id", ondelete="CASCADE"))
    message_name: Mapped[str] = mapped_column(String(200))
    element_id: Mapped[str] = mapped_column(String(200))


class BusinessKeyCounter(Base):
    """Per prefix and year counter behind business keys like WO-2026-000123."""

    __tablename__ = "business_key_counter"

    prefix: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)

