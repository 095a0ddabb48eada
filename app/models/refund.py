"""Refunds: money a customer asked back, who approved it at each level, and its payout.

One ``refund`` row per refund ticket (process ``refund``, business key ``RF-...``); it
outlives the process for reports and audits. Each approval level's decision is a row of
``refund_approval`` (not a JSON list on the refund), so "what did finance reject last
month, and why" is a plain query. Amounts are ``Numeric(12, 2)`` with a currency; the
application reads and writes them as ``Decimal`` only.

At most one refund per order reference is open (requested or approved) at a time: a
partial unique index makes a second payout for the same order impossible even when two
agents record it at the same moment.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow


class RefundStatus:
    REQUESTED = "requested"  # recorded, waiting for the approval chain
    APPROVED = "approved"  # every level approved, waiting for finance to pay it out
    REJECTED = "rejected"  # a level rejected it; the customer was told why
    PAID = "paid"  # paid out

    ALL = (REQUESTED, APPROVED, REJECTED, PAID)
    OPEN = (REQUESTED, APPROVED)


APPROVAL_LEVELS = ("lead", "finance", "manager")  # in the order a chain walks them
DECISIONS = ("approve", "reject")

_OPEN_SQL = "status IN ('requested', 'approved')"


class Refund(Base):
    __tablename__ = "refund"
    __table_args__ = (
        CheckConstraint("status IN ('requested', 'approved', 'rejected', 'paid')", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_refund_status_requested_at", "status", "requested_at"),
        Index("ix_refund_order_reference", "order_reference"),
        Index("ix_refund_customer_id", "customer_id"),
        # One open refund per order: a second payout for one order is refused, not flagged.
        Index("uq_refund_open_order_reference", "order_reference", unique=True,
              sqlite_where=text(_OPEN_SQL), postgresql_where=text(_OPEN_SQL)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    business_key: Mapped[str] = mapped_column(String(40), unique=True)  # the refund ticket, RF-2026-000001
    instance_id: Mapped[int | None]  # its process instance (no FK: tickets may be purged, refunds are kept)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="SET NULL"))
    phone: Mapped[str] = mapped_column(String(32), default="")  # normalized, where the customer is told
    language: Mapped[str] = mapped_column(String(2), default="zh")
    source_ticket: Mapped[str] = mapped_column(String(40), default="")  # the call it came from, if any
    order_reference: Mapped[str] = mapped_column(String(40))  # upper case, e.g. ORD-2026-0042
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    reason: Mapped[str] = mapped_column(String(40))
    method: Mapped[str] = mapped_column(String(40))
    account: Mapped[str] = mapped_column(String(100), default="")
    details: Mapped[str] = mapped_column(Text, default="")
    approval_chain: Mapped[list[Any]] = mapped_column(default=list)  # ["lead", "finance", ...] from the DMN
    status: Mapped[str] = mapped_column(String(20), default=RefundStatus.REQUESTED)
    requested_by: Mapped[str] = mapped_column(String(80), default="")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]  # approved by the last level, or rejected
    paid_amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    payout_reference: Mapped[str | None] = mapped_column(String(80))
    payout_note: Mapped[str] = mapped_column(Text, default="")
    paid_by: Mapped[str | None] = mapped_column(String(80))
    paid_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    approvals: Mapped[list[RefundApproval]] = relationship(
        back_populates="refund", cascade="all, delete-orphan", passive_deletes=True,
        order_by="RefundApproval.id")


class RefundApproval(Base):
    """One level's decision on a refund: who, when, approve or reject, and why."""

    __tablename__ = "refund_approval"
    __table_args__ = (
        CheckConstraint("decision IN ('approve', 'reject')", name="decision"),
        CheckConstraint("level IN ('lead', 'finance', 'manager')", name="level"),
        Index("ix_refund_approval_refund_id_level", "refund_id", "level", unique=True),
        Index("ix_refund_approval_decided_by_decided_at", "decided_by", "decided_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refund.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(20))
    decision: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(80))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)

    refund: Mapped[Refund] = relationship(back_populates="approvals")
