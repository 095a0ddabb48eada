"""The call-intake process (bpmn/inbound_call.bpmn) with customers already on file.

Scenario files start on an empty customer table; these tests put a customer there first,
then play a call from their number the way the telephony worker would.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.engine import ProcessEngine
from app.errors import IllegalState
from app.models import Customer, ProcessInstance
from app.services import customers, identity

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def hotline(db):
    engine = ProcessEngine(db, ROOT / "forms")
    with db.transaction() as s:
        identity.ensure_user(s, "li.na", groups=["hotline"])
        identity.ensure_user(s, "zhang.min", groups=["hotline-supervisors"])
    engine.deploy([ROOT / "bpmn"])
    return engine


def _take_call(engine: ProcessEngine, iid: int, answers: dict) -> None:
    task = engine.instance_detail(iid)["tasks"][0]
    assert task["element_id"] == "take_call"
    engine.claim(task["id"], "li.na")
    engine.complete(task["id"], "li.na", answers)


def _path(detail: dict) -> list[str]:
    return [e["element_id"] for e in detail["history"] if e["kind"] == "step_completed"]


def test_a_known_caller_is_recognised_with_their_open_tickets_and_not_registered_again(hotline):
    db = hotline.db
    with db.transaction() as s:
        cid = customers.register("+86 138 0013 8000", "Zhao Lei", "en", _session=s)["customer_id"]
    earlier = hotline.start("inbound_call", {"channel": "phone", "caller_phone": "13800138000"}, "li.na")
    with db.transaction() as s:  # filed under the customer as an earlier, finished call would be
        s.get(ProcessInstance, earlier).customer_id = cid
        earlier_key = s.get(ProcessInstance, earlier).business_key

    started = hotline.correlate("call.inbound", payload={"caller": "138-0013-8000", "called": "12345",
                                                         "call_id": "1767574800.1"}).started
    assert len(started) == 1
    iid = started[0]
    data = hotline.instance_detail(iid)["data"]
    assert data["customer"] == {"found": True, "phone": "+8613800138000", "customer_id": cid, "name": "Zhao Lei",
                                "language": "en", "open_tickets": [earlier_key]}

    _take_call(hotline, iid, {"caller_phone": "138-0013-8000", "caller_name": "Zhao Lei", "language": "en",
                              "reason": "complaint", "follow_up": "callback"})
    detail = hotline.instance_detail(iid)
    assert detail["status"] == "completed"
    assert "register_caller" not in _path(detail)
    assert _path(detail)[-4:] == ["caller_identified", "link_customer", "how_handled", "callback_requested"]
    assert detail["data"]["customer_id"] == cid and detail["data"]["follow_up"] == "callback"
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 1


def test_registering_a_caller_commits_with_the_engine_step(hotline):
    iid = hotline.start("inbound_call", {"channel": "phone"}, "li.na")
    _take_call(hotline, iid, {"caller_phone": "139 1234 5678", "caller_name": "孙丽", "language": "zh",
                              "reason": "inquiry", "follow_up": "resolved", "answer": "Opening hours 8-20"})
    detail = hotline.instance_detail(iid)
    with hotline.db.transaction() as s:
        customer = customers.find_by_phone(s, "+8613912345678")
        assert (customer.name, customer.language) == ("孙丽", "zh")
    assert detail["data"]["customer_id"] == customer.id
    assert "register_caller" in _path(detail)
    with hotline.db.transaction() as s:  # the engine filed the ticket under the caller it identified
        assert s.get(ProcessInstance, iid).customer_id == customer.id


def test_a_refused_registration_leaves_the_task_open_and_writes_nothing(hotline):
    iid = hotline.start("inbound_call", {"channel": "phone"}, "li.na")
    task = hotline.instance_detail(iid)["tasks"][0]
    with pytest.raises(Exception, match="not a valid phone number"):
        hotline.complete(task["id"], "li.na", {"caller_phone": "8001", "language": "zh", "reason": "inquiry",
                                               "follow_up": "resolved"})
    detail = hotline.instance_detail(iid)
    assert [t["element_id"] for t in detail["tasks"]] == ["take_call"]
    assert detail["incidents"] == []
    with hotline.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 0


def test_a_call_started_by_hand_without_a_channel_is_refused_and_takes_no_event(hotline):
    """With no data the hand start's condition is not met and the process would wait at its
    call-event start: refused, so no dead ticket can take the next caller's event."""
    with pytest.raises(IllegalState, match="call.inbound"):
        hotline.start("inbound_call", {}, "li.na")

    result = hotline.correlate("call.inbound", payload={"caller": "13800138000", "called": "12345",
                                                        "call_id": "1767574800.2"})

    assert result.delivered == [] and len(result.started) == 1
