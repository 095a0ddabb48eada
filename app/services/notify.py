"""Notifications: the service operations diagrams call, and the inbox and outbox queries.

``notify.sms``, ``notify.email``, ``notify.in_app`` and ``notify.supervisors`` only write
rows into the outbox (``app.models.notification``), in the transaction of the process step
that calls them: a step that fails leaves no row and sends nothing. After the commit each
row is announced (``context.after_commit``); the ``notify`` job and the workers' sweep send
it (``app.services.outbox``), exactly once. Kinds announced:

- ``("notification", id)``: an SMS or e-mail to send;
- ``("notification.in_app", id)``: an in-app message, delivered by the commit itself (a live
  inbox may push it; nothing needs to be sent).

The texts come from the diagram, already in the right language.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Forbidden, IllegalState, InvalidInput, NotFound
from app.models import Group, User, utcnow
from app.models.notification import Channel, Notification, NotificationStatus

from . import context
from .customers import normalize_phone
from .registry import operation

ANNOUNCE_SEND = "notification"
ANNOUNCE_IN_APP = "notification.in_app"
MAX_TEXT = 10_000
MAX_SUBJECT = 300
MAX_LINK = 500
FALLBACK_SUPERVISORS = "supervisors"
_EMAIL = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"'.]+$")


# --- validation -------------------------------------------------------------------------------


def _text(value: Any, what: str = "text", limit: int = MAX_TEXT) -> str:
    if isinstance(value, dict):
        raise ValueError(f"notification {what} must be a string, got a dict with keys {sorted(value)}: pick the "
                         "language in the diagram first, e.g. texts[language]")
    if not isinstance(value, str):
        raise ValueError(f"notification {what} must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise ValueError(f"notification {what} is empty: there is nothing to send")
    if len(value) > limit:
        raise ValueError(f"notification {what} is {len(value)} characters long; at most {limit} are sent")
    return value


def _phone(to: Any) -> str:
    try:
        return normalize_phone(to)
    except InvalidInput as exc:
        raise ValueError(f"cannot send an SMS to {to!r}: {exc.message}") from None


def _email(to: Any) -> str:
    address = to.strip() if isinstance(to, str) else ""
    if not _EMAIL.match(address) or len(address) > 320:
        raise ValueError(f"cannot send an e-mail to {to!r}: not an e-mail address like name@example.com")
    return address


def _subject(subject: Any) -> str:
    subject = _text(subject, "subject", MAX_SUBJECT)
    if "\n" in subject or "\r" in subject:
        raise ValueError("notification subject must be one line")
    return subject


def _link(link: Any) -> str | None:
    if link is None or link == "":
        return None
    if not isinstance(link, str) or len(link) > MAX_LINK or not link.startswith(("/", "https://", "http://")):
        raise ValueError(f"notification link {link!r} must be a path like /tasks/12 or an http(s) address "
                         f"(at most {MAX_LINK} characters)")
    return link


def _calling_instance() -> int | None:
    try:
        return context.instance_for("notify")
    except context.NoTransaction:  # called directly with a session: no ticket to file it under
        return None


# --- the service operations -------------------------------------------------------------------


def _queue(session: Session, channel: str, recipient: str, text: str, subject: str = "") -> int:
    row = Notification(channel=channel, recipient=recipient, subject=subject, text=text,
                       instance_id=_calling_instance(), status=NotificationStatus.PENDING,
                       next_attempt_at=utcnow())
    session.add(row)
    session.flush()
    context.after_commit(ANNOUNCE_SEND, row.id)
    return row.id


@operation("notify.sms")
def sms(to: str, text: str, *, _session: Session) -> dict[str, int]:
    """Send an SMS to a phone number (sent after the step commits, once)."""
    return {"notification_id": _queue(_session, Channel.SMS, _phone(to), _text(text))}


@operation("notify.email")
def email(to: str, subject: str, text: str, *, _session: Session) -> dict[str, int]:
    """Send an e-mail (sent after the step commits, once)."""
    return {"notification_id": _queue(_session, Channel.EMAIL, _email(to), _text(text), _subject(subject))}


def _members(session: Session, group: str) -> list[str]:
    # A lane may name a group nobody has joined yet (no row): that group has no members.
    return list(session.scalars(select(User.username).join(User.groups).where(
        Group.name == group, User.is_active.is_(True)).order_by(User.username)))


def _deliver_in_app(session: Session, usernames: list[str], text: str, link: str | None) -> list[int]:
    now, instance_id, ids = utcnow(), _calling_instance(), []
    for username in dict.fromkeys(usernames):  # once per person, in order
        row = Notification(channel=Channel.IN_APP, recipient=username, username=username, text=text, link=link,
                           instance_id=instance_id, status=NotificationStatus.SENT, attempts=0,
                           next_attempt_at=now, sent_at=now, created_at=now)
        session.add(row)
        session.flush()
        context.after_commit(ANNOUNCE_IN_APP, row.id)
        ids.append(row.id)
    return ids


@operation("notify.in_app")
def in_app(text: str, user: str | None = None, group: str | None = None, link: str | None = None, *,
           _session: Session) -> dict[str, list[int]]:
    """Show a message in the inbox of a user, or of every member of a group."""
    text, link = _text(text), _link(link)
    if not user and not group:
        raise ValueError("notify.in_app needs a user or a group to send to")
    usernames = []
    if user:
        found = _session.scalar(select(User).where(User.username == user))
        if found is None:
            raise ValueError(f"notify.in_app: no user {user!r}")
        if found.is_active:
            usernames.append(found.username)
    if group:
        usernames += _members(_session, group)
    return {"notification_ids": _deliver_in_app(_session, usernames, text, link)}


def supervisor_group_of(session: Session, group: str) -> str:
    """The group that supervises ``group``: its ``supervisor_group``, else ``<group>-supervisors``."""
    row = session.scalar(select(Group).where(Group.name == group))
    return (row.supervisor_group if row is not None and row.supervisor_group else None) or f"{group}-supervisors"


def supervisors_of(session: Session, group: str) -> list[str]:
    """The supervisors of ``group``: members of its supervisor group (``supervisor_group_of``);
    when that has nobody, members of ``supervisors``."""
    return _members(session, supervisor_group_of(session, group)) or _members(session, FALLBACK_SUPERVISORS)


@operation("notify.supervisors")
def supervisors(group: str, text: str, link: str | None = None, *, _session: Session) -> dict[str, list[int]]:
    """Show a message to the supervisors of a group (or to 'supervisors'); nobody there is no error."""
    if not isinstance(group, str) or not group.strip():
        raise ValueError("notify.supervisors needs the name of the group whose supervisors to tell")
    text, link = _text(text), _link(link)
    return {"notification_ids": _deliver_in_app(_session, supervisors_of(_session, group.strip()), text, link)}


# --- inbox and outbox, for the CLI and the API --------------------------------------------------


def inbox(session: Session, username: str, unread_only: bool = False, limit: int = 100) -> dict[str, Any]:
    """A user's in-app notifications, unread first, newest first; with the unread count."""
    if session.scalar(select(User.id).where(User.username == username)) is None:
        raise NotFound(f"no user '{username}'")
    mine = select(Notification).where(Notification.username == username, Notification.channel == Channel.IN_APP)
    unread = session.scalar(select(func.count()).select_from(
        mine.where(Notification.read_at.is_(None)).subquery()))
    if unread_only:
        mine = mine.where(Notification.read_at.is_(None))
    rows = session.scalars(mine.order_by(Notification.read_at.is_not(None), Notification.id.desc())
                           .limit(limit)).all()
    return {"user": username, "unread": unread, "notifications": [r.to_dict() for r in rows]}


def mark_read(session: Session, notification_id: int, username: str) -> dict[str, Any]:
    """Mark an in-app notification read; only the user it was sent to may. Reading twice keeps the first time."""
    row = session.get(Notification, notification_id, with_for_update=True)
    if row is None or row.channel != Channel.IN_APP:
        raise NotFound(f"no in-app notification {notification_id}")
    if row.username != username:
        raise Forbidden(f"notification {notification_id} was sent to another user; only they may mark it read")
    if row.read_at is None:
        row.read_at = utcnow()
    return row.to_dict()


def outbox(session: Session, status: str | None = None, channel: str | None = None, instance_id: int | None = None,
           limit: int = 100) -> list[dict[str, Any]]:
    """Notifications newest first, filtered by status, channel or ticket."""
    query = select(Notification)
    if status is not None:
        if status not in NotificationStatus.ALL:
            raise InvalidInput(f"status must be one of: {', '.join(NotificationStatus.ALL)} (got {status!r})",
                               field="status")
        query = query.where(Notification.status == status)
    if channel is not None:
        if channel not in Channel.ALL:
            raise InvalidInput(f"channel must be one of: {', '.join(Channel.ALL)} (got {channel!r})",
                               field="channel")
        query = query.where(Notification.channel == channel)
    if instance_id is not None:
        query = query.where(Notification.instance_id == instance_id)
    return [r.to_dict() for r in session.scalars(query.order_by(Notification.id.desc()).limit(limit))]


def retry(session: Session, notification_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Send a failed (or still waiting) SMS or e-mail again now, with a fresh set of attempts."""
    row = session.get(Notification, notification_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no notification {notification_id}")
    if row.channel not in Channel.EXTERNAL:
        raise IllegalState(f"notification {notification_id} is an in-app message: it was delivered when written")
    if row.status == NotificationStatus.SENT:
        raise IllegalState(f"notification {notification_id} was sent at {row.sent_at.isoformat()}; "
                           "retrying would send it twice")
    if row.status == NotificationStatus.SENDING:
        raise IllegalState(f"notification {notification_id} is being sent right now")
    row.status, row.attempts, row.next_attempt_at = NotificationStatus.PENDING, 0, now or utcnow()
    row.claimed_at = row.claim_token = None
    return row.to_dict()
