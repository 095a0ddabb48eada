"""The work-order process (bpmn/work_order.bpmn) with what scenario files cannot see.

Scenarios (bpmn/scenarios/work_order.scenario.yaml) walk every path; these tests check what
the path leaves behind outside the workflow: the SMS texts in the customer's language, the
in-app notice an urge sends to the group holding the order, the escalation of a late task,
the routing table row by row, the business key, and the demo staff behind every lane.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from engine_helpers import T0, task
from lxml import etree
from sqlalchemy import select

from app.engine import ProcessEngine, clock
from app.engine.diagram import NS, describe_elements, lanes_of
from app.models import HumanTask
from app.models.async_work import ThrownMessage
from app.models.notification import Notification
from app.services import demo, identity

ROOT = Path(__file__).resolve().parent.parent
DEPARTMENTS = {"water-dept": "chen.jie", "power-dept": "zhao.lei", "gas-dept": "sun.li",
               "property-mgmt": "zhou.qiang", "road-maintenance": "wu.hao"}


@pytest.fixture
def hotline(db):
    clock.freeze(T0)
    engine = ProcessEngine(db, ROOT / "forms")
    with db.transaction() as s:
        identity.ensure_user(s, "li.na", groups=["hotline"])
        identity.ensure_user(s, "wang.wei", groups=["hotline"])
        identity.ensure_user(s, "huang.ying", groups=["hotline-dispatch"])
        identity.ensure_user(s, "zhang.min", groups=["water-dept-supervisors"])
        for group, user in DEPARTMENTS.items():
            identity.ensure_user(s, user, groups=[group])
    engine.deploy([ROOT / "bpmn"])
    return engine


def _open(engine: ProcessEngine, language: str = "zh", customer_id: int = 1, **classified) -> int:
    iid = engine.start("work_order", {"channel": "phone", "caller_phone": "138 0013 8000", "customer_id": customer_id,
                                      "language": language}, "li.na")
    answers = {"caller_phone": "138 0013 8000", "language": language, "classify_action": "dispatch",
               "category": "water", "area": "chaoyang", "address": "3 Jianguo Road", "description": "No water",
               "urgency": "urgent", **classified}
    engine.complete(task(engine.db, iid, "classify").id, "li.na", answers)
    return iid


def _do(engine: ProcessEngine, iid: int, element: str, actor: str, answers: dict) -> None:
    engine.complete(task(engine.db, iid, element).id, actor, answers)


def _notifications(engine: ProcessEngine, iid: int, channel: str) -> list[Notification]:
    with engine.db.transaction() as s:
        return list(s.scalars(select(Notification).where(Notification.instance_id == iid,
                                                         Notification.channel == channel)
                              .order_by(Notification.id)))


def _finish(engine: ProcessEngine, iid: int, department: str = "water") -> None:
    user = DEPARTMENTS[f"{department}-dept"]
    _do(engine, iid, f"accept_{department}", user, {"accept_decision": "accept"})
    _do(engine, iid, f"field_{department}", user, {"field_outcome": "done", "result": "Fixed",
                                                   "completed_at": "2026-03-02T12:00:00+08:00"})
    _do(engine, iid, "review", "li.na", {"review_decision": "close"})


def test_a_work_order_gets_a_wo_business_key(hotline):
    iid = _open(hotline)
    assert hotline.instance_detail(iid)["business_key"] == "WO-2026-000001"
    assert hotline.instance_detail(_open(hotline))["business_key"] == "WO-2026-000002"


@pytest.mark.parametrize("language, accepted, closed", [
    ("zh", "您的工单已由相关部门受理", "您的工单已办结"),
    ("en", "Your work order has been accepted", "Your work order is closed"),
])
def test_the_customer_gets_an_sms_at_acceptance_and_at_close_in_their_language(hotline, language, accepted, closed):
    iid = _open(hotline, language=language)
    assert _notifications(hotline, iid, "sms") == []
    _do(hotline, iid, "accept_water", "chen.jie", {"accept_decision": "accept"})
    [first] = _notifications(hotline, iid, "sms")
    assert first.recipient == "+8613800138000"  # normalized like customers' numbers
    assert accepted in first.text

    _do(hotline, iid, "field_water", "chen.jie", {"field_outcome": "done", "result": "Fixed",
                                                  "completed_at": "2026-03-02T12:00:00+08:00"})
    assert len(_notifications(hotline, iid, "sms")) == 1  # nothing while the hotline reviews
    _do(hotline, iid, "review", "li.na", {"review_decision": "close"})
    texts = [n.text for n in _notifications(hotline, iid, "sms")]
    assert len(texts) == 2 and closed in texts[1]
    assert hotline.instance_detail(iid)["status"] == "completed"


def test_closing_without_work_sends_nothing(hotline):
    iid = hotline.start("work_order", {"channel": "phone", "caller_phone": "13800138000", "customer_id": 2}, "li.na")
    _do(hotline, iid, "classify", "li.na", {"caller_phone": "13800138000", "language": "zh",
                                            "classify_action": "close", "close_reason": "Already fixed"})
    assert hotline.instance_detail(iid)["status"] == "completed"
    assert _notifications(hotline, iid, "sms") == []
    with hotline.db.transaction() as s:
        assert s.scalars(select(ThrownMessage).where(ThrownMessage.instance_id == iid)).all() == []


def test_a_return_sends_no_sms(hotline):
    iid = _open(hotline)
    _do(hotline, iid, "accept_water", "chen.jie", {"accept_decision": "return", "return_reason": "Not ours"})
    assert _notifications(hotline, iid, "sms") == []


def test_an_urge_notifies_the_group_that_holds_the_order_now(hotline):
    iid = _open(hotline, customer_id=5)
    _do(hotline, iid, "accept_water", "chen.jie", {"accept_decision": "transfer", "transfer_to": "gas-dept"})

    result = hotline.correlate("work_order.urge", {"customer_id": 5}, {"customer_id": 5, "note": "Third call"})
    assert result.delivered == [iid]
    [notice] = _notifications(hotline, iid, "in_app")
    assert notice.username == "sun.li"  # the gas department holds it after the transfer, not water
    assert "Third call" in notice.text
    assert [t.element_id for t in _open_tasks(hotline, iid)] == ["accept_gas"]  # nothing else changes

    hotline.correlate("work_order.urge", {"customer_id": 5}, {"customer_id": 5})
    assert [n.username for n in _notifications(hotline, iid, "in_app")] == ["sun.li", "sun.li"]
    history = hotline.instance_detail(iid)["history"]
    assert [e["element_id"] for e in history if e["kind"] == "message_received"] == ["urged", "urged"]
    assert hotline.instance_detail(iid)["data"]["urge_count"] == 2


def test_an_urge_during_review_reaches_the_hotline(hotline):
    iid = _open(hotline, customer_id=6)
    _do(hotline, iid, "accept_water", "chen.jie", {"accept_decision": "accept"})
    _do(hotline, iid, "field_water", "chen.jie", {"field_outcome": "done", "result": "Fixed",
                                                  "completed_at": "2026-03-02T12:00:00+08:00"})
    hotline.correlate("work_order.urge", {"customer_id": 6}, {"customer_id": 6})
    assert sorted(n.username for n in _notifications(hotline, iid, "in_app")) == ["li.na", "wang.wei"]


def test_an_urge_for_another_customer_does_not_reach_the_order(hotline):
    iid = _open(hotline, customer_id=7)
    result = hotline.correlate("work_order.urge", {"customer_id": 8}, {"customer_id": 8})
    assert result.delivered == [] and result.buffered is not None
    assert _notifications(hotline, iid, "in_app") == []


def _open_tasks(engine: ProcessEngine, iid: int) -> list[HumanTask]:
    with engine.db.transaction() as s:
        return list(s.scalars(select(HumanTask).where(HumanTask.instance_id == iid,
                                                      HumanTask.status.in_(("open", "claimed")))
                              .order_by(HumanTask.id)))


@pytest.mark.parametrize("urgency, minutes", [("normal", 120), ("urgent", 60), ("emergency", 30)])
def test_a_late_acceptance_escalates_the_task_and_tells_the_supervisors(hotline, urgency, minutes):
    iid = _open(hotline, urgency=urgency)
    before = task(hotline.db, iid, "accept_water")
    assert (before.escalation_level, before.overdue) == (0, False)
    assert before.due_at == T0 + timedelta(minutes=minutes)  # the SLA follows the urgency

    clock.advance(seconds=minutes * 60)
    assert hotline.fire_due_timers()["fired"] == []
    clock.advance(seconds=1)
    assert hotline.fire_due_timers()["fired"] == [iid]
    late = task(hotline.db, iid, "accept_water")
    assert late.id == before.id and late.candidate_groups == ["water-dept"]  # still the department's
    assert (late.escalation_level, late.overdue, late.priority) == (1, True, before.priority + 1)
    assert [n.username for n in _notifications(hotline, iid, "in_app")] == ["zhang.min"]


def test_waiting_for_the_customer_stops_the_field_sla(hotline):
    iid = _open(hotline, customer_id=9)
    _do(hotline, iid, "accept_water", "chen.jie", {"accept_decision": "accept"})
    clock.advance(days=1)
    hotline.fire_due_timers()
    _do(hotline, iid, "field_water", "chen.jie", {"field_outcome": "need_customer", "waiting_reason": "not_home"})
    timers = [t["element_id"] for t in hotline.instance_detail(iid)["timers"]]
    assert timers == ["wait_for_customer"]  # only the 3-day wait (held by the event-based gateway)

    clock.advance(days=2, seconds=1)  # the 2-day field SLA would have fired by now
    hotline.fire_due_timers()
    assert _notifications(hotline, iid, "in_app") == []
    hotline.correlate("work_order.customer_ready", {"customer_id": 9}, {"customer_id": 9})
    back = task(hotline.db, iid, "field_water")
    assert back.escalation_level == 0
    assert back.due_at == clock.now() + timedelta(days=2)  # a fresh SLA from now


@pytest.mark.parametrize("category, area, department", [
    ("water", "tongzhou", "water-dept"),
    ("power", "other", "power-dept"),
    ("gas", "haidian", "gas-dept"),
    ("property", "xicheng", "property-mgmt"),
    ("property", "fengtai", "hotline-dispatch"),  # estates outside the four central districts
    ("road", "fengtai", "road-maintenance"),
    ("road", "other", "hotline-dispatch"),  # outside the city
    ("other", "chaoyang", "hotline-dispatch"),
])
def test_routing_table(hotline, category, area, department):
    iid = _open(hotline, category=category, area=area)
    assert hotline.instance_detail(iid)["data"]["department"] == department
    opened = task(hotline.db, iid, "dispatch_by_hand" if department == "hotline-dispatch"
                  else f"accept_{department.split('-')[0]}")
    assert opened.candidate_groups == [department]


def test_every_lane_is_a_demo_group_with_a_chinese_name_and_staff():
    process = etree.parse(str(ROOT / "bpmn" / "work_order.bpmn")).getroot().find(".//bpmn:process", NS)
    lanes = set(lanes_of(process).values())
    assert lanes == {"hotline", "hotline-dispatch", "hotline-supervisors", *DEPARTMENTS}
    staffed = {g for _, _, groups in demo.DEMO_USERS for g in groups}
    for group in lanes:
        assert group in demo.DEMO_GROUPS and any("\u4e00" <= c <= "\u9fff" for c in demo.DEMO_GROUPS[group])
        assert group in staffed, f"no demo user in {group}"


def test_every_user_task_goes_to_the_group_of_its_lane():
    process = etree.parse(str(ROOT / "bpmn" / "work_order.bpmn")).getroot().find(".//bpmn:process", NS)
    human = {k: v for k, v in describe_elements(process).items() if v["type"] == "userTask"}
    assert len(human) == 19  # classify, dispatch, review, contact + 3 per department
    for element_id, info in human.items():
        assert info["candidate_groups"] == [info["lane"]], element_id
        assert info["form_key"] and (ROOT / "forms" / f"{info['form_key']}.json").is_file()


def test_closing_throws_the_survey_callback_request(hotline):
    iid = _open(hotline, language="en", customer_id=4)
    _finish(hotline, iid)
    with hotline.db.transaction() as s:
        [thrown] = s.scalars(select(ThrownMessage).where(ThrownMessage.instance_id == iid)).all()
        assert (thrown.message_name, thrown.element_id) == ("callback.requested", "survey_requested")
        assert thrown.sender_business_key == "WO-2026-000001"
        assert {k: thrown.payload[k] for k in ("kind", "customer_id", "phone", "language")} == {
            "kind": "survey", "customer_id": 4, "phone": "138 0013 8000", "language": "en"}
