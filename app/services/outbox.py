"""Sending the outbox: take a notification, send it outside any transaction, record the outcome.

Exactly once, as far as a database can promise it:

1. **Claim** with one conditional UPDATE: ``pending`` and due (or ``sending`` whose lease ran
   out: a sender killed mid-send) becomes ``sending`` with a fresh lease token, in its own
   short transaction. Two jobs, or a job and a sweep, racing on one row: the database lets
   one UPDATE match, the other changes no row and walks away (PostgreSQL re-checks the
   WHERE after waiting for the row lock; SQLite has one writer at a time).
2. **Send** with no transaction open (an SMTP server may take seconds).
3. **Record** ``sent`` (or the failure) with an UPDATE that only matches while this sender
   still holds the lease.

The one window left: a sender that dies after the gateway accepted the message and before
step 3 committed (killed, power cut, database gone at that instant). After the lease
(``LEASE``) the row is taken again and sent a second time. E-mail carries a stable
``Message-ID`` and SMS a stable reference (``Outgoing.reference``) so a receiver or
gateway that deduplicates can drop the copy. Closing the window for good would need the
gateway to take an idempotency key, which SMTP does not.

Failures: each claim counts an attempt; a failure puts the row back to ``pending`` after
a backoff (``backoff``), and the last allowed attempt leaves it ``failed`` with its error
for a manager (``flask --app wsgi notifications list --status failed``, then ``retry``).
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from app.db import Database
from app.models import utcnow
from app.models.notification import Channel, Notification, NotificationStatus

from .senders import Outgoing, PermanentFailure, Senders

log = logging.getLogger("hotline.notify")

LEASE = timedelta(minutes=5)  # far longer than any send may take (SMTP times out after 30 s)
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
DEFAULT_MAX_ATTEMPTS = 5


def backoff(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failed attempt: 30 s, 1 min, 2 min, 4 min ... at most 1 h."""
    return min(BACKOFF_FIRST * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


def _takeable(now: datetime):
    """Rows a sender may take now: due and pending, or abandoned mid-send (lease expired)."""
    return and_(Notification.channel.in_(Channel.EXTERNAL), or_(
        and_(Notification.status == NotificationStatus.PENDING, Notification.next_attempt_at <= now),
        and_(Notification.status == NotificationStatus.SENDING, Notification.claimed_at < now - LEASE)))


@dataclass
class Outcome:
    notification_id: int
    status: str  # sent, retrying, failed, skipped (not due, sent already, or another sender has it)
    error: str | None = None
    next_attempt_at: datetime | None = None

    def to_dict(self) -> dict:
        return {"notification_id": self.notification_id, "status": self.status, "error": self.error,
                "next_attempt_at": self.next_attempt_at}


def claim(db: Database, notification_id: int, now: datetime) -> tuple[Outgoing, str, int] | None:
    """Take the row for sending (see the module doc); None when it is not ours to send."""
    token = secrets.token_hex(16)
    with db.transaction() as s:
        taken = s.execute(update(Notification).where(Notification.id == notification_id, _takeable(now)).values(
            status=NotificationStatus.SENDING, claimed_at=now, claim_token=token,
            attempts=Notification.attempts + 1).execution_options(synchronize_session=False)).rowcount
        if taken != 1:
            return None
        row = s.get(Notification, notification_id, populate_existing=True)
        return (Outgoing(row.id, row.channel, row.recipient, row.subject, row.text, row.created_at), token,
                row.attempts)


def _finish(db: Database, notification_id: int, token: str, **values) -> bool:
    with db.transaction() as s:
        return s.execute(update(Notification).where(
            Notification.id == notification_id, Notification.claim_token == token,
            Notification.status == NotificationStatus.SENDING).values(claimed_at=None, claim_token=None, **values)
            .execution_options(synchronize_session=False)).rowcount == 1


def deliver(db: Database, senders: Senders, notification_id: int, *, now: datetime | None = None,
            max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Outcome:
    """Send one notification if it is due and nobody else is sending it. Safe to run any number of times."""
    now = now or utcnow()
    claimed = claim(db, notification_id, now)
    if claimed is None:
        return Outcome(notification_id, "skipped")
    item, token, attempts = claimed
    try:
        senders.send(item)
    except Exception as exc:  # noqa: BLE001 - any failure of the outside world is recorded, not raised
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, PermanentFailure) or attempts >= max_attempts:
            _finish(db, notification_id, token, status=NotificationStatus.FAILED, last_error=error)
            log.warning("%s notification %s to %s failed for good after %s attempt(s): %s", item.channel,
                        item.id, item.recipient, attempts, error)
            return Outcome(notification_id, "failed", error)
        retry_at = now + backoff(attempts)
        _finish(db, notification_id, token, status=NotificationStatus.PENDING, last_error=error,
                next_attempt_at=retry_at)
        log.info("%s notification %s to %s failed (attempt %s of %s), again at %s: %s", item.channel, item.id,
                 item.recipient, attempts, max_attempts, retry_at.isoformat(), error)
        return Outcome(notification_id, "retrying", error, retry_at)
    if not _finish(db, notification_id, token, status=NotificationStatus.SENT, sent_at=utcnow()):
        # Our lease ran out mid-send and another sender took the row: it sends too (the documented window).
        log.warning("notification %s was sent, but its lease had expired and another sender took it", item.id)
    return Outcome(notification_id, "sent")


def due_ids(db: Database, now: datetime, limit: int) -> list[int]:
    """Up to ``limit`` notifications to send now, the longest waiting first."""
    with db.transaction() as s:
        return list(s.scalars(select(Notification.id).where(_takeable(now))
                              .order_by(Notification.next_attempt_at, Notification.id).limit(limit)))


@dataclass
class SweepResult:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"sent": self.sent, "retrying": self.retrying, "failed": self.failed, "skipped": self.skipped}


def send_due(db: Database, senders: Senders, *, now: datetime | None = None, limit: int = 100,
             max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> SweepResult:
    """The sweep: send every due notification (up to ``limit``), whatever Redis lost.

    Several workers may sweep at once: each row is claimed one by one right before it is
    sent, so they share the work and none is sent by two of them.
    """
    now = now or utcnow()
    result = SweepResult()
    for notification_id in due_ids(db, now, limit):
        outcome = deliver(db, senders, notification_id, now=now, max_attempts=max_attempts)
        if outcome.status == "sent":
            result.sent.append(notification_id)
        elif outcome.status == "retrying":
            result.retrying.append(notification_id)
        elif outcome.status == "failed":
            result.failed.append({"notification_id": notification_id, "error": outcome.error})
        else:
            result.skipped.append(notification_id)
    return result
