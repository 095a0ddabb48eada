"""Messages from outside: start instances, reach the right waiting instance, or wait in the buffer."""
from __future__ import annotations

import pytest
from engine_helpers import (
    T0,
    buffered_count,
    complete,
    history,
    open_elements,
    status,
    subscriptions,
    task_data,
)
from sqlalchemy import func, select

from app.engine import clock
from app.errors import IllegalState
from app.models import BufferedMessage, MessageStart, ProcessInstance


def test_message_start_event_starts_an_instance(engine, deploy, db):
    deploy("msg_start.bpmn")
    with db.transaction() as s:
        assert [(m.message_name, m.element_id) for m in s.scalars(select(MessageStart))] == \
               [("call_received", "call_arrives")]

    result = engine.correlate("call_received", {}, {"caller": "Ann", "phone": "555-0100"})

    assert result.delivered == [] and result.buffered is None
    [iid] = result.started
    assert open_elements(db, iid) == ["triage"]
    assert task_data(engine, iid, "triage")["call"] == {"caller": "Ann", "phone": "555-0100"}
    assert [e.element_id for e in history(db, iid, "message_received")] == ["call_arrives"]

    second = engine.correlate("call_received", {}, {"caller": "Bob"})
    assert len(second.started) == 1 and second.started != result.started  # every message starts one
    assert buffered_count(db) == 0


def test_a_process_that_starts_on_a_message_is_not_started_by_hand(engine, deploy, db):
    """It would wait at its start for ever (or take a message meant for a new ticket)."""
    deploy("msg_start.bpmn")
    with pytest.raises(IllegalState, match="starts when the message call_received arrives"):
        engine.start("call_intake", {}, "admin")
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(ProcessInstance)) == 0  # nothing half-made

    result = engine.correlate("call_received", {}, {"caller": "Cy"})
    [iid] = result.started
    assert task_data(engine, iid, "triage")["call"] == {"caller": "Cy"}


def test_message_reaches_only_the_instance_with_the_matching_correlation(engine, deploy, db):
    deploy("msg_catch.bpmn")
    first = engine.start("await_payment", {"order_no": "A-1"}, "admin")
    second = engine.start("await_payment", {"order_no": "B-2"}, "admin")
    for iid, order in ((first, "A-1"), (second, "B-2")):
        [sub] = subscriptions(db, iid)
        assert (sub.message_name, sub.element_id, sub.correlation) == \
               ("payment_received", "wait_payment", {"order_no": order})
        assert open_elements(db, iid) == []

    result = engine.correlate("payment_received", {"order_no": "B-2"}, {"amount": "49.90"})

    assert (result.delivered, result.started, result.buffered) == ([second], [], None)
    assert open_elements(db, second) == ["ship"]
    assert task_data(engine, second, "ship")["payment"] == {"amount": "49.90"}
    assert subscriptions(db, second) == []
    assert open_elements(db, first) == []  # still waiting for its own payment
    assert len(subscriptions(db, first)) == 1
    assert history(db, first, "message_received") == []


def test_correlation_value_may_come_from_the_payload(engine, deploy, db):
    """No keys given: the retrieval expression reads the property from the payload."""
    deploy("msg_catch.bpmn")
    first = engine.start("await_payment", {"order_no": "A-1"}, "admin")
    second = engine.start("await_payment", {"order_no": "B-2"}, "admin")

    result = engine.correlate("payment_received", {}, {"order_no": "A-1", "amount": "10.00"})

    assert result.delivered == [first]
    assert open_elements(db, first) == ["ship"]
    assert open_elements(db, second) == []


def test_unmatched_message_is_buffered_and_delivered_when_an_instance_starts_waiting(engine, deploy, db):
    deploy("msg_catch.bpmn")
    waiting = engine.start("await_payment", {"order_no": "A-1"}, "admin")

    early = engine.correlate("payment_received", {"order_no": "C-3"}, {"amount": "5.00"})
    assert (early.delivered, early.started) == ([], [])
    assert early.buffered is not None
    assert buffered_count(db) == 1
    assert open_elements(db, waiting) == []  # A-1 did not take C-3's payment

    late = engine.start("await_payment", {"order_no": "C-3"}, "admin")

    assert open_elements(db, late) == ["ship"]  # took the buffered message while starting
    assert task_data(engine, late, "ship")["payment"] == {"amount": "5.00"}
    assert buffered_count(db) == 0
    assert subscriptions(db, late) == []
    assert [e.element_id for e in history(db, late, "message_received")] == ["wait_payment"]
    complete(engine, late, "ship")
    assert status(db, late) == "completed"


def test_a_buffered_message_is_taken_once(engine, deploy, db):
    deploy("msg_catch.bpmn")
    engine.correlate("payment_received", {"order_no": "D-4"}, {"amount": "1.00"})
    one = engine.start("await_payment", {"order_no": "D-4"}, "admin")
    two = engine.start("await_payment", {"order_no": "D-4"}, "admin")
    assert open_elements(db, one) == ["ship"]
    assert open_elements(db, two) == []
    assert len(subscriptions(db, two)) == 1


def test_buffered_message_expires_after_its_time_to_live(engine, deploy, db):
    clock.freeze(T0)
    deploy("msg_catch.bpmn")
    result = engine.correlate("payment_received", {"order_no": "E-5"}, {"amount": "2.00"})
    with db.transaction() as s:
        kept = s.get(BufferedMessage, result.buffered)
        assert (kept.received_at, kept.correlation) == (T0, {"order_no": "E-5"})
        ttl = (kept.expires_at - kept.received_at).total_seconds()
    assert ttl == engine.message_ttl_seconds

    clock.advance(seconds=ttl - 60)
    assert engine.expire_messages() == 0
    assert buffered_count(db) == 1

    clock.advance(seconds=120)
    assert engine.expire_messages() == 1
    assert buffered_count(db) == 0

    iid = engine.start("await_payment", {"order_no": "E-5"}, "admin")
    assert open_elements(db, iid) == []  # the expired payment is gone: it waits
    assert len(subscriptions(db, iid)) == 1


def test_an_expired_message_is_not_delivered_even_before_the_sweep(engine, deploy, db):
    clock.freeze(T0)
    deploy("msg_catch.bpmn")
    engine.correlate("payment_received", {"order_no": "F-6"}, {})
    clock.advance(seconds=engine.message_ttl_seconds + 1)
    iid = engine.start("await_payment", {"order_no": "F-6"}, "admin")
    assert open_elements(db, iid) == []
    with db.transaction() as s:
        assert s.get(ProcessInstance, iid).status == "waiting"
