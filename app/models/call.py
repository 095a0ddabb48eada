"""Phone calls: one row per call (Asterisk's Linkedid) and its normalized call events.

The telephony listener normalizes AMI events (Newchannel, QueueCallerJoin, AgentConnect,
QueueCallerAbandon, Hangup...) into call events of the kinds below, each with a key unique
to that AMI event (for example ``<Uniqueid>:<Event>``), so a replay after a reconnect or a
retried job finds its row and counts nothing twice (``uq_call_event_event_key``).
``app.services.calls.record_call_event`` writes both tables; the ``call`` row's status,
times, wait and talk seconds are derived from the events it has, whatever their order.

A call's customer is found by its normalized number (the caller's on inbound calls, the
called party's on outbound ones); it stays empty for withheld or unknown numbers. The
ticket a call opened (the call-intake instance) is kept without a foreign key, like
``process_instance.customer_id``: tickets and calls are both history that is never deleted.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow


class CallDirection:
    INBOUND = "inbound"  # a customer calls the hotline
    OUTBOUND = "outbound"  # the hotline calls a customer (click-to-call, callbacks)

    ALL = (INBOUND, OUTBOUND)


class CallStatus:
    RINGING = "ringing"  # reached the PBX (IVR, ringing): nobody has answered yet
    IN_QUEUE = "in_queue"  # waiting in a queue for an agent
    ANSWERED = "answered"  # an agent (or, outbound, the customer) is talking
    ENDED = "ended"  # answered, then hung up
    ABANDONED = "abandoned"  # the caller hung up while waiting in a queue
    MISSED = "missed"  # hung up or not answered before reaching an agent (outbound: no answer)
    VOICEMAIL = "voicemail"  # not answered; the caller was sent to voicemail

    ALL = (RINGING, IN_QUEUE, ANSWERED, ENDED, ABANDONED, MISSED, VOICEMAIL)
    LIVE = (RINGING, IN_QUEUE, ANSWERED)
    UNANSWERED = (ABANDONED, MISSED, VOICEMAIL)


class CallKind:
    """Normalized call-event kinds (also the BPMN message names the telephony worker sends)."""

    INBOUND = "call.inbound"  # a call reached the hotline (Newchannel of the caller's channel)
    OUTBOUND = "call.outbound"  # the hotline dialled out (Originate / Newchannel from-internal)
    IVR_CHOICE = "call.ivr_choice"  # the caller pressed a menu key (data: {"choice": "2"})
    QUEUED = "call.queued"  # QueueCallerJoin (queue)
    ANSWERED = "call.answered"  # AgentConnect, or BridgeEnter / DialEnd ANSWER of a direct call (agent)
    ABANDONED = "call.abandoned"  # QueueCallerAbandon: hung up while waiting in the queue
    MISSED = "call.missed"  # DialEnd NOANSWER/BUSY/CANCEL with nobody else answering
    VOICEMAIL = "call.voicemail"  # sent to voicemail (VoiceMail application / UserEvent)
    HANGUP = "call.hangup"  # Hangup of the call's first channel (Uniqueid == Linkedid)

    ALL = (INBOUND, OUTBOUND, IVR_CHOICE, QUEUED, ANSWERED, ABANDONED, MISSED, VOICEMAIL, HANGUP)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Call(Base):
    __tablename__ = "call"
    __table_args__ = (
        CheckConstraint(f"direction IN ({_in(CallDirection.ALL)})", name="direction"),
        CheckConstraint(f"status IN ({_in(CallStatus.ALL)})", name="status"),
        Index("ix_call_customer_id_started_at", "customer_id", "started_at"),
        Index("ix_call_caller_number", "caller_number"),
        Index("ix_call_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(64), unique=True)  # Asterisk Linkedid: one per call
    direction: Mapped[str] = mapped_column(String(10), default=CallDirection.INBOUND)
    caller: Mapped[str] = mapped_column(String(80), default="")  # CallerIDNum as the PBX gave it
    caller_number: Mapped[str | None] = mapped_column(String(32))  # normalized (+8613800138000); None: withheld
    called: Mapped[str] = mapped_column(String(80), default="")  # the number dialled (hotline DID, Exten)
    called_number: Mapped[str | None] = mapped_column(String(32))  # normalized, when it is a phone number
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="SET NULL"))
    queue: Mapped[str | None] = mapped_column(String(80))
    agent: Mapped[str | None] = mapped_column(String(80))  # the user who answered, when known
    status: Mapped[str] = mapped_column(String(20), default=CallStatus.RINGING)
    started_at: Mapped[datetime]
    queued_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    wait_seconds: Mapped[int | None]  # queued (or started) until answered, or until the caller gave up
    talk_seconds: Mapped[int | None]  # answered until hung up
    instance_id: Mapped[int | None]  # the ticket this call opened (call intake), when any
    business_key: Mapped[str | None] = mapped_column(String(40))  # ... and its business key
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call", cascade="all, delete-orphan", passive_deletes=True,
        order_by=lambda: (CallEvent.at, CallEvent.id))


class CallEvent(Base):
    __tablename__ = "call_event"
    __table_args__ = (Index("ix_call_event_call_id_at", "call_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("call.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(200), unique=True)  # the same AMI event: the same key
    kind: Mapped[str] = mapped_column(String(40))  # CallKind
    at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)  # Uniqueid, Channel, choice, cause...
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    call: Mapped[Call] = relationship(back_populates="events")
