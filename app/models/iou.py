"""IOUs (credit sales) with their installments and payments, and the dunning levels.

An IOU is what a customer owes: an amount in a currency, paid in one or more
installments, each with its own due date. Payments are recorded per installment
(partial or full). The IOU collection process (``bpmn/iou_collection.bpmn``) duns each
open installment level by level; the levels are data in ``dunning_level`` (days relative
to the due date, an action, a bilingual message), read by the process at run time, so a
changed table reaches IOUs already running at their next level.

Money is ``Numeric(12, 2)`` (Python ``Decimal``) with a three-letter currency code.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow

MONEY = Numeric(12, 2)

IOU_STATUSES = ("open", "paid", "written_off", "partially_written_off")
INSTALLMENT_STATUSES = ("open", "paid", "written_off")
DUNNING_ACTIONS = ("sms", "email", "call_task", "supervisor_review", "write_off_approval")
PAYMENT_METHODS = ("cash", "bank_transfer", "card", "wechat_pay", "alipay", "other")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Iou(Base):
    __tablename__ = "iou"
    __table_args__ = (
        CheckConstraint(_in("status", IOU_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_iou_customer_id", "customer_id"),
        Index("ix_iou_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    instance_id: Mapped[int | None] = mapped_column(Integer, default=None)  # the collection ticket
    business_key: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    description: Mapped[str] = mapped_column(Text, default="")
    responsible_agent: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(32), default="")  # normalized; where dunning SMS go
    email: Mapped[str | None] = mapped_column(String(200), default=None)
    language: Mapped[str] = mapped_column(String(2), default="zh")
    status: Mapped[str] = mapped_column(String(24), default="open")
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)

    installments: Mapped[list[IouInstallment]] = relationship(
        back_populates="iou", cascade="all, delete-orphan", passive_deletes=True, order_by="IouInstallment.number")


class IouInstallment(Base):
    __tablename__ = "iou_installment"
    __table_args__ = (
        UniqueConstraint("iou_id", "number"),
        CheckConstraint(_in("status", INSTALLMENT_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("paid >= 0 AND written_off >= 0 AND paid + written_off <= amount", name="settled_le_amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    iou_id: Mapped[int] = mapped_column(ForeignKey("iou.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ... in due-date order
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    paid: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    written_off: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    # The last dunning level performed: its number and its days (levels are ordered by days).
    dunning_level: Mapped[int] = mapped_column(Integer, default=0)
    dunning_days: Mapped[int | None] = mapped_column(Integer, default=None)
    review_at: Mapped[datetime | None] = mapped_column(default=None)  # write-off asked again (after a rejection)
    settled_at: Mapped[datetime | None] = mapped_column(default=None)

    iou: Mapped[Iou] = relationship(back_populates="installments")
    payments: Mapped[list[IouPayment]] = relationship(
        back_populates="installment", cascade="all, delete-orphan", passive_deletes=True, order_by="IouPayment.id")

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.paid - self.written_off


class IouPayment(Base):
    __tablename__ = "iou_payment"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(_in("method", PAYMENT_METHODS), name="method"),
        Index("ix_iou_payment_installment_id", "installment_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    installment_id: Mapped[int] = mapped_column(ForeignKey("iou_installment.id", ondelete="CASCADE"))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    method: Mapped[str] = mapped_column(String(20), default="cash")
    reference: Mapped[str] = mapped_column(String(100), default="")
    recorded_by: Mapped[str] = mapped_column(String(100), default="system")
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    installment: Mapped[IouInstallment] = relationship(back_populates="payments")


class DunningLevel(Base):
    """One step of the dunning ladder: ``days`` relative to an installment's due date
    (negative: before it), what to do then, and the customer's message in both languages."""

    __tablename__ = "dunning_level"
    __table_args__ = (CheckConstraint(_in("action", DUNNING_ACTIONS), name="action"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    level: Mapped[int] = mapped_column(Integer, unique=True)
    days: Mapped[int] = mapped_column(Integer, unique=True)
    action: Mapped[str] = mapped_column(String(24))
    message_en: Mapped[str] = mapped_column(Text, default="")
    message_zh: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
