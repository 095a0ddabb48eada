"""Calls: recording normalized call events, and the call row each one updates.

The telephony worker hands every normalized AMI event to ``record_call_event`` (one RQ job
per event). An event is a dict::

    {"linkedid": "1781704152.3807872",         # the call (Asterisk Linkedid); required
     "key": "1781704152.3807872:AgentConnect",   # unique per AMI event; required ("event_key" works too)
     "kind": "call.answered",                    # one of CallKind.ALL; required
     "at": "2026-11-23T09:00:28+00:00",          # aware datetime, ISO 8601 with offset, or epoch seconds
     "caller": "13800138000", "called": "12345", "queue": "88", "agent": "li.na",  # optional
     "data": {...}}                              # optional: what else the AMI event said

Recording is idempotent: the event key is unique (``call_event.event_key``), so a replayed
event, a retried job or two workers running the same job at once record it once and
change nothing the second time. The call row's status and times are derived from all of
its events (whatever order they arrive in), see ``_derive``.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import Call, CallEvent, CustomerPhone, utcnow
from app.models.call import CallDirection, CallKind, CallStatus

from .customers import normalize_phone

# Caller ids that mean "no number": withheld, unknown, or an empty field.
_NO_NUMBER = {"", "<unknown>", "unknown", "anonymous", "restricted", "private", "withheld", "unavailable"}


def record_call_event(session: Session, event: Mapping[str, Any]) -> dict[str, Any]:
    """Record one normalized call event and update its call; a replayed event changes nothing.

    Returns ``{"call_id", "linkedid", "event_id", "recorded", "status", "customer_id"}``;
    ``recorded`` is False when this event key was recorded before. Raises InvalidInput
    naming the field for a missing linkedid or key, an unknown kind or a bad timestamp.
    """
    linkedid, key, kind, at, data = _validated(event)
    caller = _text(event.get("caller"), "caller", 80)
    called = _text(event.get("called"), "called", 80)
    queue = _text(event.get("queue"), "queue", 80)
    agent = _text(event.get("agent"), "agent", 80)

    call = _lock_call(session, linkedid, kind, at)
    event_id = _insert_once(session, CallEvent, "event_key", {
        "call_id": call.id, "event_key": key, "kind": kind, "at": at, "data": data, "created_at": utcnow()})
    if event_id is None:  # recorded before: nothing changes
        existing = session.scalar(select(CallEvent).where(CallEvent.event_key == key))
        if existing is not None and existing.call_id != call.id:
            raise InvalidInput(f"event key {key!r} was recorded for another call ({existing.call.linkedid}), "
                               f"not {linkedid}", field="key")
        return _result(call, existing.id if existing else None, recorded=False)

    if kind == CallKind.OUTBOUND:
        call.direction = CallDirection.OUTBOUND
    if caller and (not call.caller or kind in (CallKind.INBOUND, CallKind.OUTBOUND)):
        call.caller, call.caller_number = caller, _number(caller)
    if called and (not call.called or kind in (CallKind.INBOUND, CallKind.OUTBOUND)):
        call.called, call.called_number = called, _number(called)
    if queue:
        call.queue = queue
    if agent and (kind == CallKind.ANSWERED or not call.agent):
        call.agent = agent
    _derive(session, call)
    if call.customer_id is None:
        call.customer_id = _customer_of(session, call)
    call.updated_at = utcnow()
    session.flush()
    return _result(call, event_id, recorded=True)


def link_ticket(session: Session, linkedid: str, instance_id: int, business_key: str) -> Call:
    """Remember the ticket this call opened (the call-intake instance the telephony worker started)."""
    call = session.scalar(select(Call).where(Call.linkedid == linkedid))
    if call is None:
        raise NotFound(f"call {linkedid} has no recorded events", linkedid=linkedid)
    call.instance_id, call.business_key, call.updated_at = instance_id, business_key, utcnow()
    return call


def find(session: Session, linkedid: str) -> Call | None:
    return session.scalar(select(Call).where(Call.linkedid == linkedid))


def calls_of(session: Session, customer_id: int, limit: int | None = None) -> list[Call]:
    """A customer's calls, newest first."""
    query = (select(Call).where(Call.customer_id == customer_id)
             .order_by(Call.started_at.desc(), Call.id.desc()).limit(limit))
    return list(session.scalars(query))


def as_dict(call: Call) -> dict[str, Any]:
    return {"id": call.id, "linkedid": call.linkedid, "direction": call.direction, "status": call.status,
            "caller": call.caller, "caller_number": call.caller_number, "called": call.called,
            "customer_id": call.customer_id, "queue": call.queue, "agent": call.agent,
            "started_at": call.started_at, "answered_at": call.answered_at, "ended_at": call.ended_at,
            "wait_seconds": call.wait_seconds, "talk_seconds": call.talk_seconds,
            "instance_id": call.instance_id, "business_key": call.business_key}


# --- validation ------------------------------------------------------------------------------------

def _validated(event: Any) -> tuple[str, str, str, datetime, dict]:
    if not isinstance(event, Mapping):
        raise InvalidInput(f"a call event must be a mapping, not {type(event).__name__}", field="event")
    linkedid = _text(event.get("linkedid"), "linkedid", 64)
    if not linkedid:
        raise InvalidInput("a call event needs its linkedid (the Asterisk Linkedid of the call)", field="linkedid")
    key = _text(event.get("key", event.get("event_key")), "key", 200)
    if not key:
        raise InvalidInput("a call event needs its key (unique per AMI event, e.g. '<Uniqueid>:<Event>')",
                           field="key")
    kind = event.get("kind")
    if kind not in CallKind.ALL:
        raise InvalidInput(f"unknown call event kind {kind!r}; known kinds: {', '.join(CallKind.ALL)}", field="kind")
    at = _moment(event.get("at"))
    data = event.get("data") or {}
    if not isinstance(data, Mapping):
        raise InvalidInput(f"data must be a JSON object, not {type(data).__name__}", field="data")
    return linkedid, key, kind, at, dict(data)


def _text(value: Any, field: str, length: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InvalidInput(f"{field} must be text, not {type(value).__name__}", field=field)
    text = str(value).strip()
    if len(text) > length:
        raise InvalidInput(f"{field} is longer than {length} characters", field=field)
    return text


def _moment(value: Any) -> datetime:
    if value is None or value == "":
        raise InvalidInput("a call event needs its time (at)", field="at")
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidInput(f"at: {value!r} is not a time (epoch seconds)", field="at") from None
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(f"at: {value!r} is not an ISO 8601 time like 2026-11-23T09:00:00+00:00",
                               field="at") from None
    else:
        raise InvalidInput(f"at: {value!r} is not a time", field="at")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInput(f"at: {value!s} has no time zone; give an offset like +00:00", field="at")
    return parsed.astimezone(UTC)


def _number(raw: str) -> str | None:
    """The normalized number, or None for a withheld, unknown or internal (too short) one."""
    if raw.strip().lower() in _NO_NUMBER:
        return None
    try:
        return normalize_phone(raw)
    except InvalidInput:
        return None


# --- writing ---------------------------------------------------------------------------------------

def _insert_once(session: Session, model, unique: str, values: dict[str, Any]) -> int | None:
    """INSERT ... ON CONFLICT (unique) DO NOTHING: the new row's id, or None when it exists.

    On PostgreSQL a concurrent transaction inserting the same key makes this one wait until
    that one commits (then: a conflict, None) or rolls back (then: inserted); no error, so
    the caller's transaction goes on. SQLite runs one writer at a time (BEGIN IMMEDIATE).
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (insert(model).values(**values).on_conflict_do_nothing(index_elements=[unique])
                 .returning(model.id))
    return session.execute(statement).scalar()


def _lock_call(session: Session, linkedid: str, kind: str, at: datetime) -> Call:
    """The call row, created on its first event and locked (FOR UPDATE) until the transaction ends.

    The lock makes events of one call recorded at once (two workers) apply one after the other,
    so each one derives the status from all the events before it.
    """
    now = utcnow()
    _insert_once(session, Call, "linkedid", {
        "linkedid": linkedid, "direction": CallDirection.OUTBOUND if kind == CallKind.OUTBOUND else
        CallDirection.INBOUND, "caller": "", "called": "", "status": CallStatus.RINGING, "started_at": at,
        "created_at": now, "updated_at": now})
    return session.scalars(select(Call).where(Call.linkedid == linkedid).with_for_update()
                           .execution_options(populate_existing=True)).one()


def _derive(session: Session, call: Call) -> None:
    """Status, times, wait and talk seconds from all the call's events (order does not matter).

    started: the earliest event; queued / answered: the first such event; ended: the last
    hang-up (or abandon / miss). Answered calls are ``answered`` then ``ended``; unanswered
    ones ``voicemail``, ``abandoned`` (hung up in the queue) or ``missed`` (anything else),
    and ``in_queue`` / ``ringing`` while they last.
    """
    rows = session.execute(select(CallEvent.kind, CallEvent.at).where(CallEvent.call_id == call.id)).all()
    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    for kind, at in rows:
        first[kind] = min(first.get(kind, at), at)
        last[kind] = max(last.get(kind, at), at)
    call.started_at = min(at for _, at in rows)
    call.queued_at = first.get(CallKind.QUEUED)
    call.answered_at = first.get(CallKind.ANSWERED)
    endings = [last[k] for k in (CallKind.HANGUP, CallKind.ABANDONED, CallKind.MISSED) if k in last]
    call.ended_at = max(endings) if endings else None

    if call.answered_at is not None:
        call.status = CallStatus.ENDED if CallKind.HANGUP in last else CallStatus.ANSWERED
    elif CallKind.VOICEMAIL in last:
        call.status = CallStatus.VOICEMAIL
    elif CallKind.ABANDONED in last:
        call.status = CallStatus.ABANDONED
    elif CallKind.MISSED in last:
        call.status = CallStatus.MISSED
    elif call.ended_at is not None:  # hung up before anyone answered
        call.status = CallStatus.ABANDONED if call.queued_at is not None else CallStatus.MISSED
    elif call.queued_at is not None:
        call.status = CallStatus.IN_QUEUE
    else:
        call.status = CallStatus.RINGING

    waited_from = call.queued_at or call.started_at
    waited_until = call.answered_at or first.get(CallKind.VOICEMAIL) or call.ended_at
    call.wait_seconds = _seconds(waited_from, waited_until)
    call.talk_seconds = _seconds(call.answered_at, last.get(CallKind.HANGUP)) if call.answered_at else None


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds()))


def _customer_of(session: Session, call: Call) -> int | None:
    """The customer whose number is on the other end: the caller's inbound, the called party's outbound."""
    number = call.called_number if call.direction == CallDirection.OUTBOUND else call.caller_number
    if number is None:
        return None
    return session.scalar(select(CustomerPhone.customer_id).where(CustomerPhone.number == number))


def _result(call: Call, event_id: int | None, recorded: bool) -> dict[str, Any]:
    return {"call_id": call.id, "linkedid": call.linkedid, "event_id": event_id, "recorded": recorded,
            "status": call.status, "customer_id": call.customer_id}
