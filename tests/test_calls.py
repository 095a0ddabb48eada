"""Calls: recording normalized call events, on SQLite and PostgreSQL.

Each event updates its call (one row per Asterisk Linkedid): status, times, wait and talk
seconds, the customer found by the normalized number. A replayed event changes nothing, also
when two workers record it at the same moment (PostgreSQL). The last tests replay real AMI
captures (/work/shared/fixtures/ami, tests' copy of the path below) through a tiny normalizer
that lives here only; the real one belongs to the telephony listener.
"""
from __future__ import annotations

import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.errors import InvalidInput, NotFound
from app.models import Call, CallEvent, Customer, CustomerPhone
from app.models.call import CallKind, CallStatus
from app.services import calls, customers

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
LINKEDID = "1781704152.3807872"
AMI_FIXTURES = Path(os.environ.get("HOTLINE_AMI_FIXTURES", "/work/shared/fixtures/ami"))


def event(kind: str, seconds: float = 0, key: str | None = None, linkedid: str = LINKEDID, **fields) -> dict:
    return {"linkedid": linkedid, "key": key or f"{linkedid}:{kind}:{seconds}", "kind": kind,
            "at": (T0 + timedelta(seconds=seconds)).isoformat(), **fields}


def record(db, *events: dict) -> list[dict]:
    with db.transaction() as s:
        return [calls.record_call_event(s, e) for e in events]


def the_call(db, linkedid: str = LINKEDID) -> dict:
    with db.transaction() as s:
        call = calls.find(s, linkedid)
        assert call is not None
        return {**calls.as_dict(call), "queued_at": call.queued_at, "updated_at": call.updated_at,
                "events": [(e.kind, e.at) for e in call.events]}


def counts(db) -> tuple[int, int]:
    with db.transaction() as s:
        return s.scalar(select(func.count()).select_from(Call)), s.scalar(select(func.count()).select_from(CallEvent))


def register(db, phone: str, name: str = "Zhao Lei") -> int:
    with db.transaction() as s:
        return customers.register(phone, name, "zh", _session=s)["customer_id"]


# --- the life of a call -----------------------------------------------------------------------------

def test_an_answered_call_goes_ringing_in_queue_answered_ended(db):
    steps = [(event(CallKind.INBOUND, 0, caller="138 0013 8000", called="12345"), CallStatus.RINGING),
             (event(CallKind.IVR_CHOICE, 8, data={"choice": "2"}), CallStatus.RINGING),
             (event(CallKind.QUEUED, 12, queue="water"), CallStatus.IN_QUEUE),
             (event(CallKind.ANSWERED, 40, agent="li.na"), CallStatus.ANSWERED),
             (event(CallKind.HANGUP, 160, data={"cause": "16"}), CallStatus.ENDED)]
    for e, status in steps:
        [result] = record(db, e)
        assert (result["recorded"], result["status"]) == (True, status), e["kind"]

    call = the_call(db)
    assert call["direction"] == "inbound"
    assert (call["caller"], call["caller_number"], call["called"]) == ("138 0013 8000", "+8613800138000", "12345")
    assert (call["queue"], call["agent"]) == ("water", "li.na")
    assert (call["started_at"], call["queued_at"], call["answered_at"], call["ended_at"]) == (
        T0, T0 + timedelta(seconds=12), T0 + timedelta(seconds=40), T0 + timedelta(seconds=160))
    assert call["started_at"].tzinfo is not None
    assert (call["wait_seconds"], call["talk_seconds"]) == (28, 120)  # queued -> answered, answered -> hung up
    assert [k for k, _ in call["events"]] == [e["kind"] for e, _ in steps]
    with db.transaction() as s:
        choice = s.scalar(select(CallEvent).where(CallEvent.kind == CallKind.IVR_CHOICE))
        assert choice.data == {"choice": "2"}


@pytest.mark.parametrize(("kinds", "status", "wait", "ended"), [
    ([CallKind.QUEUED, CallKind.ABANDONED, CallKind.HANGUP], CallStatus.ABANDONED, 60, True),
    ([CallKind.QUEUED, CallKind.HANGUP], CallStatus.ABANDONED, 60, True),  # hung up in the queue, no abandon event
    ([CallKind.HANGUP], CallStatus.MISSED, 70, True),  # hung up in the IVR
    ([CallKind.MISSED], CallStatus.MISSED, 70, True),
    ([CallKind.QUEUED, CallKind.VOICEMAIL, CallKind.HANGUP], CallStatus.VOICEMAIL, 60, True),
    ([CallKind.QUEUED, CallKind.VOICEMAIL], CallStatus.VOICEMAIL, 60, False),  # still leaving the message
    ([CallKind.QUEUED], CallStatus.IN_QUEUE, None, False),
    ([], CallStatus.RINGING, None, False),
])
def test_unanswered_calls(db, kinds, status, wait, ended):
    record(db, event(CallKind.INBOUND, 0, caller="13800138000"),
           *(event(k, 10 if k == CallKind.QUEUED else 70) for k in kinds))
    call = the_call(db)
    assert (call["status"], call["wait_seconds"], call["talk_seconds"], call["answered_at"]) == (
        status, wait, None, None)
    assert call["ended_at"] == (T0 + timedelta(seconds=70) if ended else None)


def test_events_arriving_out_of_order_give_the_same_call(db):
    """A replay after a reconnect may deliver old events late: the call is derived from all of them."""
    events = [event(CallKind.INBOUND, 0, caller="13800138000", called="12345"), event(CallKind.QUEUED, 5, queue="q1"),
              event(CallKind.ANSWERED, 20, agent="li.na"), event(CallKind.HANGUP, 80)]
    record(db, *events)
    in_order = {k: v for k, v in the_call(db).items() if k not in ("id", "updated_at")}
    shuffled = [dict(e, linkedid="other", key="other" + e["key"]) for e in events]
    random.Random(7).shuffle(shuffled)
    shuffled.sort(key=lambda e: e["kind"] != CallKind.HANGUP)  # the hang-up first: the hardest order
    record(db, *shuffled)
    other = {k: v for k, v in the_call(db, "other").items() if k not in ("id", "updated_at")}
    assert {**other, "linkedid": LINKEDID} == in_order
    assert other["status"] == CallStatus.ENDED


def test_an_event_after_the_hangup_does_not_reopen_the_call(db):
    record(db, event(CallKind.INBOUND, 0), event(CallKind.QUEUED, 5), event(CallKind.ABANDONED, 30),
           event(CallKind.HANGUP, 31))
    [late] = record(db, event(CallKind.QUEUED, 4, key="late-queue-event", queue="q2"))
    assert late["status"] == CallStatus.ABANDONED
    call = the_call(db)
    assert (call["queued_at"], call["ended_at"], call["wait_seconds"]) == (
        T0 + timedelta(seconds=4), T0 + timedelta(seconds=31), 27)


def test_outbound_call_links_the_called_customer(db):
    cid = register(db, "+86 139 1234 5678")
    record(db, event(CallKind.OUTBOUND, 0, caller="8001", called="13912345678", agent="wang.wei"),
           event(CallKind.ANSWERED, 9), event(CallKind.HANGUP, 69))
    call = the_call(db)
    assert (call["direction"], call["customer_id"], call["caller_number"]) == ("outbound", cid, None)
    assert (call["status"], call["agent"], call["wait_seconds"], call["talk_seconds"]) == (
        CallStatus.ENDED, "wang.wei", 9, 60)


def test_an_outbound_call_not_answered_is_missed(db):
    record(db, event(CallKind.OUTBOUND, 0, called="13912345678"), event(CallKind.HANGUP, 30))
    assert (the_call(db)["status"], the_call(db)["direction"]) == (CallStatus.MISSED, "outbound")


# --- replays ---------------------------------------------------------------------------------------

def test_a_replayed_event_changes_nothing(db):
    first = record(db, event(CallKind.INBOUND, 0, caller="13800138000"), event(CallKind.QUEUED, 5, queue="q1"))
    before = the_call(db)
    again = record(db, event(CallKind.QUEUED, 5, queue="q1"))
    assert again[0] == {**first[1], "recorded": False}
    assert the_call(db) == before  # not even updated_at moves
    assert counts(db) == (1, 2)


def test_a_replay_with_other_fields_keeps_what_was_recorded(db):
    """The key says it is the same AMI event: a second copy is not trusted to rewrite the first."""
    record(db, event(CallKind.INBOUND, 0, caller="13800138000"), event(CallKind.ANSWERED, 30, key="k", agent="li.na"))
    [again] = record(db, event(CallKind.ANSWERED, 50, key="k", agent="wang.wei"))
    assert again["recorded"] is False
    call = the_call(db)
    assert (call["agent"], call["answered_at"]) == ("li.na", T0 + timedelta(seconds=30))


def test_an_event_key_reused_for_another_call_is_refused(db):
    record(db, event(CallKind.INBOUND, 0, key="same"))
    with pytest.raises(InvalidInput, match=f"event key 'same' was recorded for another call \\({LINKEDID}\\)") as info:
        record(db, event(CallKind.INBOUND, 0, key="same", linkedid="2"))
    assert info.value.detail == {"field": "key"}
    assert counts(db) == (1, 1)  # the other call's row was rolled back with the refusal


@pytest.mark.postgres
def test_two_workers_recording_the_same_event_at_once_record_it_once(pg_db):
    """Both transactions start before either commits; the unique key and ON CONFLICT keep one row, no error."""
    for n in range(5):
        linkedid = f"race-{n}"
        barrier = threading.Barrier(2)

        def work(_, linkedid=linkedid, barrier=barrier):
            with pg_db.transaction() as s:
                s.execute(select(1))  # the transaction has begun
                barrier.wait()
                return calls.record_call_event(s, event(CallKind.INBOUND, 0, key=f"{linkedid}:in", linkedid=linkedid,
                                                        caller="13800138000"))

        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(work, range(2)))
        assert sorted(o["recorded"] for o in outcomes) == [False, True], f"round {n}: {outcomes}"
        assert outcomes[0]["call_id"] == outcomes[1]["call_id"]
    assert counts(pg_db) == (5, 5)


@pytest.mark.postgres
def test_two_events_of_one_call_recorded_at_once_both_count(pg_db):
    """The call row is locked while an event is applied, so neither derivation misses the other event."""
    record(pg_db, event(CallKind.INBOUND, 0, caller="13800138000"))
    for n in range(10):
        linkedid = f"pair-{n}"
        record(pg_db, event(CallKind.INBOUND, 0, linkedid=linkedid))
        barrier = threading.Barrier(2)

        def work(e, barrier=barrier):
            with pg_db.transaction() as s:
                s.execute(select(1))
                barrier.wait()
                return calls.record_call_event(s, e)

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(work, [event(CallKind.QUEUED, 10, linkedid=linkedid),
                                 event(CallKind.ANSWERED, 30, linkedid=linkedid)]))
        call = the_call(pg_db, linkedid)
        assert (call["status"], call["queued_at"], call["wait_seconds"]) == (
            CallStatus.ANSWERED, T0 + timedelta(seconds=10), 20), f"round {n}"


# --- customers -------------------------------------------------------------------------------------

def test_the_caller_is_linked_by_any_spelling_of_their_number(db):
    cid = register(db, "138-0013-8000")
    [result] = record(db, event(CallKind.INBOUND, 0, caller="008613800138000"))
    assert result["customer_id"] == cid == the_call(db)["customer_id"]


@pytest.mark.parametrize("caller", ["anonymous", "<unknown>", "", None, "8001", "Restricted"])
def test_withheld_or_internal_numbers_link_nobody_and_do_not_fail(db, caller):
    register(db, "13800138000")
    [result] = record(db, event(CallKind.INBOUND, 0, caller=caller), event(CallKind.HANGUP, 5))[:1]
    assert result["customer_id"] is None
    call = the_call(db)
    assert (call["caller_number"], call["customer_id"], call["status"]) == (None, None, CallStatus.MISSED)


def test_a_caller_registered_during_the_call_is_linked_by_the_next_event(db):
    record(db, event(CallKind.INBOUND, 0, caller="13800138000"))
    assert the_call(db)["customer_id"] is None
    cid = register(db, "13800138000")  # the agent registers the caller while talking
    record(db, event(CallKind.ANSWERED, 10), event(CallKind.HANGUP, 20))
    assert the_call(db)["customer_id"] == cid


def test_a_deleted_customer_leaves_the_call(db):
    cid = register(db, "13800138000")
    record(db, event(CallKind.INBOUND, 0, caller="13800138000"))
    with db.transaction() as s:
        s.delete(s.get(Customer, cid))
    assert the_call(db)["customer_id"] is None
    with db.transaction() as s:
        assert s.scalars(select(CustomerPhone)).all() == []


def test_link_ticket_remembers_the_ticket_the_call_opened(db):
    record(db, event(CallKind.INBOUND, 0))
    with db.transaction() as s:
        calls.link_ticket(s, LINKEDID, 42, "CALL-2026-000042")
    assert (the_call(db)["instance_id"], the_call(db)["business_key"]) == (42, "CALL-2026-000042")
    with db.transaction() as s, pytest.raises(NotFound, match="call nope has no recorded events"):
        calls.link_ticket(s, "nope", 1, "X")


# --- bad events ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "field", "message"), [
    ({"linkedid": None}, "linkedid", "needs its linkedid"),
    ({"linkedid": "  "}, "linkedid", "needs its linkedid"),
    ({"linkedid": "x" * 65}, "linkedid", "linkedid is longer than 64"),
    ({"key": ""}, "key", "needs its key"),
    ({"kind": "call.exploded"}, "kind", "unknown call event kind 'call.exploded'; known kinds: call.inbound"),
    ({"kind": None}, "kind", "unknown call event kind None"),
    ({"at": None}, "at", "needs its time"),
    ({"at": "yesterday"}, "at", "'yesterday' is not an ISO 8601 time"),
    ({"at": "2026-11-23T09:00:00"}, "at", "has no time zone"),
    ({"at": datetime(2026, 11, 23, 9)}, "at", "has no time zone"),
    ({"at": [1]}, "at", "is not a time"),
    ({"data": ["x"]}, "data", "data must be a JSON object"),
    ({"caller": {"num": 1}}, "caller", "caller must be text"),
])
def test_a_bad_event_is_refused_naming_the_field_and_writes_nothing(db, change, field, message):
    bad = {**event(CallKind.INBOUND, 0), **change}
    with db.transaction() as s, pytest.raises(InvalidInput, match=message) as info:
        calls.record_call_event(s, bad)
    assert info.value.detail == {"field": field}
    assert counts(db) == (0, 0)


def test_an_event_that_is_not_a_mapping_is_refused(db):
    with db.transaction() as s, pytest.raises(InvalidInput, match="must be a mapping, not list"):
        calls.record_call_event(s, [("linkedid", "1")])


@pytest.mark.parametrize("at", [T0, T0.astimezone(timezone(timedelta(hours=8))), T0.timestamp(),
                                "2026-11-23T09:00:00+08:00", "2026-11-23T01:00:00Z"])
def test_times_may_be_aware_datetimes_iso_text_or_epoch_seconds(db, at):
    record(db, {**event(CallKind.INBOUND), "at": at})
    assert the_call(db)["started_at"] == T0


# --- real AMI captures through a tiny normalizer (the real one is the telephony listener's) ---------

def _ami_messages(name: str) -> list[dict[str, str]]:
    path = AMI_FIXTURES / name
    if not path.exists():
        pytest.skip(f"no AMI capture at {path}")
    messages = []
    for block in path.read_bytes().decode("ascii").split("\r\n\r\n"):
        fields = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
                      for line in block.split("\r\n") if line.strip())
        if "Event" in fields:
            messages.append(fields)
    return messages


def _normalize(messages: list[dict[str, str]]) -> list[dict]:
    """The caller's channel (Uniqueid == Linkedid) only. AMI events carry no time unless the PBX sets
    timestampevents, so the clock starts at the Linkedid's epoch and moves by HoldTime / TalkTime."""
    out, now = [], None
    kinds = {"Newchannel": CallKind.INBOUND, "QueueCallerJoin": CallKind.QUEUED, "AgentConnect": CallKind.ANSWERED,
             "QueueCallerAbandon": CallKind.ABANDONED, "Hangup": CallKind.HANGUP}
    for m in messages:
        kind = kinds.get(m["Event"])
        if kind is None or m.get("Uniqueid") != m.get("Linkedid"):
            continue
        if now is None:
            now = float(m["Linkedid"].split(".")[0])
        if kind in (CallKind.ANSWERED, CallKind.ABANDONED):
            now += int(m["HoldTime"])
        talk = next((int(x["TalkTime"]) for x in messages if x["Event"] == "AgentComplete"), 0)
        if kind == CallKind.HANGUP:
            now += talk
        out.append({"linkedid": m["Linkedid"], "key": f"{m['Uniqueid']}:{m['Event']}", "kind": kind, "at": now,
                    "caller": m.get("CallerIDNum"), "called": m.get("Exten") if kind == CallKind.INBOUND else None,
                    "queue": m.get("Queue"), "agent": m.get("MemberName"),
                    "data": {k: m[k] for k in ("Channel", "Uniqueid", "Cause", "Position", "HoldTime") if k in m}})
    return out


@pytest.mark.parametrize(("capture", "status", "wait", "talk", "agent"), [
    ("pyfreepbx-queue.ami", CallStatus.ENDED, 28, 12, "Ext 7006"),
    ("pyfreepbx-abandoned.ami", CallStatus.ABANDONED, 70, None, None),
])
def test_a_real_ami_capture_replayed_twice_records_the_call_once(db, capture, status, wait, talk, agent):
    events = _normalize(_ami_messages(capture))
    results = record(db, *events)
    assert all(r["recorded"] for r in results) and len({r["call_id"] for r in results}) == 1
    linkedid = events[0]["linkedid"]
    call = the_call(db, linkedid)
    assert (call["status"], call["wait_seconds"], call["talk_seconds"], call["agent"]) == (status, wait, talk, agent)
    assert call["caller"] in ("7007", "7005") and call["caller_number"] is None  # an extension: no customer
    assert call["queue"] in ("88", "99")

    again = record(db, *events)
    assert not any(r["recorded"] for r in again)
    assert counts(db) == (1, len(events))
    assert the_call(db, linkedid) == call
