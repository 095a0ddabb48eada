"""The work-order process (bpmn/work_order.bpmn) with what scenario files cannot see.

Scenarios (bpmn/scenarios/work_order.scenario.yaml) walk every path; these tests check what
the path leaves behind outside the workflow: the SMS texts in the customer's language, the
in-app notice an urge sends to the group holding the order (and only that order), the escalation
of a late task, the countersign's task rows (one per department, in that department's inbox),
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
from app.errors import Forbidden
from app.models import HumanTask, MessageSubscription
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


def _key(engine: ProcessEngine, iid: int) -> str:
    return engine.instance_detail(iid)["business_key"]


def _urge(engine: ProcessEngine, iid: int, customer_id: int, note: str = ""):
    """Urge one order the way the hotline does: by its ticket number; the customer is information."""
    key = _key(engine, iid)
    return engine.correlate("work_order.urge", {"business_key": key},
                            {"business_key": key, "customer_id": customer_id, "note": note})


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

    result = _urge(hotline, iid, 5, "Third call")
    assert result.delivered == [iid]
    [notice] = _notifications(hotline, iid, "in_app")
    assert notice.username == "sun.li"  # the gas department holds it after the transfer, not water
    assert "Third call" in notice.text
    assert [t.element_id for t in _open_tasks(hotline, iid)] == ["accept_gas"]  # nothing else changes

    _urge(hotline, iid, 5)
    assert [n.username for n in _notifications(hotline, iid, "in_app")] == ["sun.li", "sun.li"]
    history = hotline.instance_detail(iid)["history"]
    assert [e["element_id"] for e in history if e["kind"] == "message_received"] == ["urged", "urged"]
    assert hotline.instance_detail(iid)["data"]["urge_count"] == 2


def test_an_urge_during_review_reaches_the_hotline(hotline):
    iid = _open(hotline, customer_id=6)
    _do(hotline, iid, "accept_water", "chen.jie", {"accept_decision": "accept"})
    _do(hotline, iid, "field_water", "chen.jie", {"field_outcome": "done", "result": "Fixed",
                                                  "completed_at": "2026-03-02T12:00:00+08:00"})
    _urge(hotline, iid, 6)
    assert sorted(n.username for n in _notifications(hotline, iid, "in_app")) == ["li.na", "wang.wei"]


def test_an_urge_for_another_ticket_does_not_reach_the_order(hotline):
    iid = _open(hotline, customer_id=7)
    result = hotline.correlate("work_order.urge", {"business_key": "WO-2026-000099"},
                               {"business_key": "WO-2026-000099", "customer_id": 7})
    assert result.delivered == [] and result.buffered is not None
    assert _notifications(hotline, iid, "in_app") == []


def test_an_urge_naming_only_the_customer_reaches_no_order(hotline):
    iid = _open(hotline, customer_id=7)
    result = hotline.correlate("work_order.urge", {"customer_id": 7}, {"customer_id": 7, "note": "Which one?"})
    assert result.delivered == []  # the customer is no correlation key any more: it would urge all their orders
    assert _notifications(hotline, iid, "in_app") == []


def test_a_customer_with_two_open_orders_urges_only_the_one_named(hotline):
    water = _open(hotline, customer_id=21)
    # the second comes from call intake's message, as most orders do
    started = hotline.correlate("work_order.requested", {}, {
        "customer_id": 21, "caller_phone": "138 0013 8000", "caller_name": "Wang Fang", "language": "zh",
        "reason": "repair", "notes": "Gas meter", "source_ticket": "CALL-2026-000007"})
    [gas] = started.started
    _do(hotline, gas, "classify", "li.na", {"caller_phone": "138 0013 8000", "language": "zh",
                                           "classify_action": "dispatch", "category": "gas", "area": "haidian",
                                           "address": "3 Jianguo Road", "description": "Gas meter",
                                           "urgency": "normal"})
    assert [_key(hotline, water), _key(hotline, gas)] == ["WO-2026-000001", "WO-2026-000002"]
    with hotline.db.transaction() as s:  # both wait for an urge, each for its own ticket number
        subscriptions = s.scalars(select(MessageSubscription).where(
            MessageSubscription.message_name == "work_order.urge").order_by(MessageSubscription.instance_id)).all()
        assert [(m.instance_id, m.correlation) for m in subscriptions] == [
            (water, {"business_key": "WO-2026-000001"}), (gas, {"business_key": "WO-2026-000002"})]

    result = _urge(hotline, gas, 21, "The gas one, please")
    assert result.delivered == [gas]
    assert [n.username for n in _notifications(hotline, gas, "in_app")] == ["sun.li"]
    assert _notifications(hotline, water, "in_app") == []
    assert hotline.instance_detail(gas)["data"]["urge_count"] == 1
    assert "urge_count" not in hotline.instance_detail(water)["data"]
    assert hotline.instance_detail(gas)["data"]["urge"] == {"business_key": "WO-2026-000002", "customer_id": 21,
                                                            "note": "The gas one, please"}

    result = _urge(hotline, water, 21)
    assert result.delivered == [water]
    assert [n.username for n in _notifications(hotline, water, "in_app")] == ["chen.jie"]
    assert len(_notifications(hotline, gas, "in_app")) == 1  # the gas order was not urged again


def test_the_customer_ready_message_moves_only_the_order_named(hotline):
    orders = [_open(hotline, customer_id=22), _open(hotline, customer_id=22)]
    for iid in orders:
        _do(hotline, iid, "accept_water", "chen.jie", {"accept_decision": "accept"})
        _do(hotline, iid, "field_water", "chen.jie", {"field_outcome": "need_customer", "waiting_reason": "not_home"})
    first, second = orders
    key = _key(hotline, second)
    result = hotline.correlate("work_order.customer_ready", {"business_key": key},
                               {"business_key": key, "customer_id": 22, "note": "Home now"})
    assert result.delivered == [second]
    assert [t.element_id for t in _open_tasks(hotline, second)] == ["field_water"]
    assert _open_tasks(hotline, first) == []  # still waiting for the customer
    assert hotline.instance_detail(first)["timers"][0]["element_id"] == "wait_for_customer"


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
    key = _key(hotline, iid)
    hotline.correlate("work_order.customer_ready", {"business_key": key}, {"business_key": key, "customer_id": 9})
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
    assert len(human) == 15  # classify, dispatch, review, contact, countersign + accept and field per department
    for element_id, info in human.items():
        assert info["form_key"] and (ROOT / "forms" / f"{info['form_key']}.json").is_file()
        if element_id == "countersign":  # drawn in the hotline's lane; each instance goes to its department
            assert (info["lane"], info["candidate_groups"]) == ("hotline", ["=countersigner"])
            continue
        assert info["candidate_groups"] == [info["lane"]], element_id


# --- countersign: one multi-instance task, one instance per department -----------------------

def _countersign_tasks(engine: ProcessEngine, iid: int) -> list[HumanTask]:
    return [t for t in _open_tasks(engine, iid) if t.element_id == "countersign"]


def _answer(engine: ProcessEngine, iid: int, group: str, answers: dict) -> None:
    [row] = [t for t in _countersign_tasks(engine, iid) if t.candidate_groups == [group]]
    engine.complete(row.id, DEPARTMENTS[group], answers)


def test_each_countersigning_department_gets_its_own_task_in_its_inbox(hotline):
    chosen = ["gas-dept", "water-dept", "road-maintenance"]
    iid = _open(hotline, category="power", area="haidian", countersign_departments=chosen)
    rows = _countersign_tasks(hotline, iid)
    assert [r.candidate_groups for r in rows] == [["gas-dept"], ["water-dept"], ["road-maintenance"]]
    assert {(r.form_key, r.status, r.due_at) for r in rows} == {("work_order_countersign", "open",
                                                                  T0 + timedelta(days=1))}
    assert len({r.spiff_task_id for r in rows}) == 3
    assert [t.element_id for t in _open_tasks(hotline, iid)] == ["countersign"] * 3  # nothing else yet

    gas, water, road = rows
    with pytest.raises(Forbidden):  # a department answers only its own instance
        hotline.complete(gas.id, "chen.jie", {"countersign_agree": "agree"})
    with pytest.raises(Forbidden):
        hotline.claim(water.id, "zhao.lei")  # power routes the order but was not asked to countersign
    hotline.claim(water.id, "chen.jie")
    assert task_state(hotline, water.id) == ("claimed", "chen.jie")


def task_state(engine: ProcessEngine, task_id: int) -> tuple[str, str | None]:
    with engine.db.transaction() as s:
        row = s.get(HumanTask, task_id)
        return row.status, row.assignee


def test_a_countersigner_does_not_leak_into_the_order_or_the_other_instances(hotline):
    iid = _open(hotline, category="power", area="haidian", countersign_departments=["water-dept", "gas-dept"])
    water, gas = _countersign_tasks(hotline, iid)
    assert hotline.task_detail(water.id)["data"]["countersigner"] == "water-dept"
    assert hotline.task_detail(gas.id)["data"]["countersigner"] == "gas-dept"
    assert hotline.task_detail(gas.id)["data"]["department"] == "power-dept"  # the routed one, readable

    _answer(hotline, iid, "water-dept", {"countersign_agree": "disagree", "countersign_opinion": "Pipes there"})
    other = hotline.task_detail(gas.id)["data"]
    assert other["countersigner"] == "gas-dept" and other["department"] == "power-dept"
    assert not {"countersign_agree", "countersign_opinion", "countersign_answer"} & set(other)

    _answer(hotline, iid, "gas-dept", {"countersign_agree": "agree"})
    [classify] = _open_tasks(hotline, iid)  # back to the hotline with the reason
    assert classify.element_id == "classify"
    data = hotline.task_detail(classify.id)["data"]  # the order's data as the flow carries it on
    assert data["department"] == "power-dept"  # still the routed department, not a countersigner
    assert not {"countersigner", "countersign_answer", "countersign_agree", "countersign_opinion",
                "countersign_answers"} & set(data)
    assert data["countersign_opinions"] == [{"department": "water-dept", "agree": "disagree", "opinion": "Pipes there"},
                                            {"department": "gas-dept", "agree": "agree", "opinion": ""}]
    assert data["countersign_disagreements"] == [{"department": "water-dept", "opinion": "Pipes there"}]
    assert data["countersign_agreed"] is False
    assert hotline.instance_detail(iid)["data"]["department"] == "power-dept"


def test_a_second_countersign_after_a_disagreement_asks_the_new_departments_afresh(hotline):
    iid = _open(hotline, category="road", area="chaoyang", countersign_departments=["water-dept", "gas-dept"])
    _answer(hotline, iid, "gas-dept", {"countersign_agree": "disagree", "countersign_opinion": "Gas main"})
    _answer(hotline, iid, "water-dept", {"countersign_agree": "agree"})
    assert hotline.instance_detail(iid)["data"]["countersign_disagreements"] == [
        {"department": "gas-dept", "opinion": "Gas main"}]

    _do(hotline, iid, "classify", "li.na", {"caller_phone": "138 0013 8000", "language": "zh",
                                            "classify_action": "dispatch", "category": "road", "area": "chaoyang",
                                            "address": "3 Jianguo Road", "description": "Patch, no digging",
                                            "urgency": "normal", "countersign_departments": ["power-dept"]})
    assert [r.candidate_groups for r in _countersign_tasks(hotline, iid)] == [["power-dept"]]
    _answer(hotline, iid, "power-dept", {"countersign_agree": "agree"})
    data = hotline.instance_detail(iid)["data"]
    assert data["countersign_opinions"] == [{"department": "power-dept", "agree": "agree", "opinion": ""}]
    assert (data["countersign_agreed"], data["countersign_disagreements"]) == (True, [])
    assert [(t.element_id, t.candidate_groups) for t in _open_tasks(hotline, iid)] == [
        ("accept_road", ["road-maintenance"])]
    assert hotline.instance_detail(iid)["incidents"] == []


def test_closing_throws_the_survey_callback_request(hotline):
    iid = _open(hotline, language="en", customer_id=4)
    _finish(hotline, iid)
    with hotline.db.transaction() as s:
        [thrown] = s.scalars(select(ThrownMessage).where(ThrownMessage.instance_id == iid)).all()
        assert (thrown.message_name, thrown.element_id) == ("callback.requested", "survey_requested")
        assert thrown.sender_business_key == "WO-2026-000001"
        assert {k: thrown.payload[k] for k in ("kind", "customer_id", "phone", "language")} == {
            "kind": "survey", "customer_id": 4, "phone": "138 0013 8000", "language": "en"}
