"""Customers and their phone numbers: who is calling, in which language to answer them.

A customer may have several numbers (mobile, home, office); a number belongs to one
customer, stored normalized (``app.services.customers.normalize_phone``), so the lookup
when the phone rings is one indexed equality. A customer's tickets are the process
instances whose ``customer_id`` points here (kept without a foreign key; see migration 0003).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow

LANGUAGES = ("en", "zh")


class Customer(Base):
    __tablename__ = "customer"
    __table_args__ = (CheckConstraint("language IN ('en', 'zh')", name="language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(2), default="zh")  # preferred language: en or zh
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    phones: Mapped[list[CustomerPhone]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", passive_deletes=True,
        order_by="CustomerPhone.id")


class CustomerPhone(Base):
    __tablename__ = "customer_phone"
    __table_args__ = (Index("ix_customer_phone_customer_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(32), unique=True)  # normalized: +8613800138000
    label: Mapped[str] = mapped_column(String(40), default="")  # mobile, home, office...
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="phones")
