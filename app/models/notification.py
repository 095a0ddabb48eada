"""The notification outbox: every SMS, e-mail and in-app message, written in the transaction
that decided to send it, and sent afterwards (``app.services.outbox``).

A row is the source of truth for what still has to go out. External channels (sms,
email) start ``pending``; a sender takes a row by moving it to ``sending`` with one
conditional UPDATE (a lease: ``claimed_at`` + ``claim_token``), sends outside the
database transaction, then writes ``sent``. A failure puts it back to ``pending`` with
``next_attempt_at`` in the future, or ``failed`` after the last attempt, for a manager
to retry. In-app rows are delivered by their commit: they are written ``sent`` and are
read from here by the recipient's inbox (``username``, ``read_at``).

``instance_id`` is the ticket that sent it, kept without a foreign key (like
``process_instance.customer_id``): the record of what a customer was told outlives a
purged ticket.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class Channel:
    SMS = "sms"
    EMAIL = "email"
    IN_APP = "in_app"
    ALL = (SMS, EMAIL, IN_APP)
    EXTERNAL = (SMS, EMAIL)  # sent by a job; in-app rows are delivered by their commit


class NotificationStatus:
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    ALL = (PENDING, SENDING, SENT, FAILED)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Notification(Base):
    __tablename__ = "notification"
    __table_args__ = (
        CheckConstraint(f"channel IN ({_in(Channel.ALL)})", name="channel"),
        CheckConstraint(f"status IN ({_in(NotificationStatus.ALL)})", name="status"),
        CheckConstraint("channel != 'in_app' OR username IS NOT NULL", name="in_app_username"),
        # The sweep: pending rows that are due, oldest first (and 'sending' rows whose lease ran out).
        Index("ix_notification_status_next_attempt_at", "status", "next_attempt_at"),
        # A user's inbox: unread first (read_at IS NULL), newest first.
        Index("ix_notification_username_read_at", "username", "read_at"),
        Index("ix_notification_instance_id", "instance_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    recipient: Mapped[str] = mapped_column(String(320))  # +8613800138000, an e-mail address, or a username
    subject: Mapped[str] = mapped_column(String(300), default="")
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(500))  # in-app: where the message points (a ticket, a task)
    instance_id: Mapped[int | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(10), default=NotificationStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)  # sends started (a claim counts, so a killed sender counts)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column()  # when the current sender took it (the lease)
    claim_token: Mapped[str | None] = mapped_column(String(32))  # which sender holds the lease
    sent_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    username: Mapped[str | None] = mapped_column(String(80))  # in-app: whose inbox
    read_at: Mapped[datetime | None] = mapped_column()

    def to_dict(self) -> dict:
        return {
            "id": self.id, "channel": self.channel, "recipient": self.recipient, "subject": self.subject,
            "text": self.text, "link": self.link, "instance_id": self.instance_id, "status": self.status,
            "attempts": self.attempts, "next_attempt_at": self.next_attempt_at, "sent_at": self.sent_at,
            "last_error": self.last_error, "created_at": self.created_at, "username": self.username,
            "read_at": self.read_at,
        }
