"""IOU collection (bpmn/iou_collection.bpmn): the rows it writes, the SMS and e-mails it queues,
and the dunning table as data, on SQLite and PostgreSQL (the commands: tests/test_iou_cli.py).

The paths through the diagram are played in bpmn/scenarios/iou_collection.scenario.yaml; these
tests cover what a scenario cannot reach: the tables, the outbox, a dunning table changed while
IOUs run, payments booked outside the process, and starts refused for bad data.
"""
from __future__ import annotations

import importlib.util
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.engine import ProcessEngine, clock
from app.errors import IllegalState, InvalidInput
from app.models import HumanTask, InstanceEvent, ProcessInstance, Timer
from app.models.iou import DunningLevel, Iou, IouInstallment, IouPayment
from app.models.notification import Notification
from app.services import customers, dunning, identity, ious

ROOT = Path(__file__).resolve().parent.parent
DIAGRAM = ROOT / "bpmn" / "iou_collection.bpmn"
ESCALATION = ROOT / "bpmn" / "escalation.bpmn"  # the SLA timers on the staff tasks call it
START = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
TICK = timedelta(seconds=1)
LADDER = """level,days,action,message_en,message_zh
1,-1,sms,"Tomorrow: {amount} {currency} ({business_key})",明天到期：{amount} {currency}（{business_key}）
2,2,sms,"Overdue: {amount} {currency} since {due_date}",已逾期：{amount} {currency}，自 {due_date}
3,5,write_off_approval,"Write off {amount} {currency}?",是否核销 {amount} {currency}？
"""


def _default_levels() -> list[dunning.Level]:
    """The levels migration 0009 puts in (PostgreSQL test databases are emptied between tests)."""
    path = ROOT / "migrations" / "versions" / "20261123_0009_ious_installments_payments.py"
    spec = importlib.util.spec_from_file_location("migration_0009", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [dunning.Level(*row) for row in module.DEFAULT_LEVELS]


def _engine(db) -> ProcessEngine:
    engine = ProcessEngine(db, ROOT / "forms")
    with db.transaction() as s:
        if not dunning.levels(s):
            dunning.replace_levels(s, _default_levels())
        identity.ensure_user(s, "li.na", groups=["collections"])
        identity.ensure_user(s, "zhang.min", groups=["collections-supervisors"])
        customers.register("13800138000", "王芳", "zh", _session=s)
        customers.register("+1 415 555 0100", "Ann Lee", "en", _session=s)
    engine.deploy([DIAGRAM, ESCALATION])
    return engine


@pytest.fixture
def collection(db):
    clock.freeze(START)
    return _engine(db)


def advance(engine: ProcessEngine, delta: timedelta) -> None:
    """Move the clock, firing every timer due on the way at its own time (as scenarios do)."""
    target = clock.now() + delta
    while True:
        with engine.db.transaction() as s:
            due = s.scalar(select(func.min(Timer.due_at)).where(Timer.due_at >= clock.now(), Timer.due_at <= target))
        if due is None:
            break
        clock.freeze(max(due + TICK, clock.now()))
        assert engine.fire_due_timers()["failed"] == []
    clock.freeze(target)
    assert engine.fire_due_timers()["failed"] == []


def start(engine: ProcessEngine, **data) -> int:
    data = {"customer_id": 1, "amount": "1000.00", "due_date": "2026-01-15", "responsible_agent": "li.na", **data}
    return engine.start("iou_collection", data, "li.na")


def outbox(db, instance_id: int) -> list[Notification]:
    with db.transaction() as s:
        return list(s.scalars(select(Notification).where(Notification.instance_id == instance_id)
                              .order_by(Notification.id)))


def open_tasks(engine: ProcessEngine, iid: int) -> list[dict]:
    return engine.instance_detail(iid)["tasks"]


def complete(engine: ProcessEngine, iid: int, element: str, actor: str, data: dict) -> None:
    [task] = [t for t in open_tasks(engine, iid) if t["element_id"] == element]
    engine.complete(task["id"], actor, data)


def the_iou(db, iou_id: int = 1) -> dict:
    with db.transaction() as s:
        return ious.detail(ious.find(s, iou_id))


# --- rows ------------------------------------------------------------------------------------


def test_the_start_writes_the_iou_and_its_installments_with_exact_money(collection, db):
    iid = start(collection, amount="1000.00", due_date=None, description="Meter on credit",
                installments=[{"due_date": "2026-03-15", "amount": "333.34"},
                              {"due_date": "2026-01-15", "amount": "333.33"},
                              {"due_date": "2026-02-15", "amount": 333.33}])
    with db.transaction() as s:
        iou = s.scalar(select(Iou))
        key = s.get(ProcessInstance, iid).business_key
        assert (iou.instance_id, iou.business_key, iou.customer_id, iou.currency, iou.status) == (iid, key, 1, "CNY",
                                                                                                   "open")
        assert key.startswith("IOU-")
        assert s.get(ProcessInstance, iid).customer_id == 1  # the ticket is filed under the customer
        assert iou.amount == Decimal("1000.00") and isinstance(iou.amount, Decimal)
        assert (iou.phone, iou.language, iou.responsible_agent, iou.description) == \
               ("+8613800138000", "zh", "li.na", "Meter on credit")
        assert [(i.number, i.due_date, i.amount, i.paid, i.status) for i in iou.installments] == [
            (1, date(2026, 1, 15), Decimal("333.33"), Decimal("0.00"), "open"),
            (2, date(2026, 2, 15), Decimal("333.33"), Decimal("0.00"), "open"),
            (3, date(2026, 3, 15), Decimal("333.34"), Decimal("0.00"), "open")]
        assert sum(i.amount for i in iou.installments) == iou.amount
    # every installment waits for its own first level: three days before its due date, 10:00 Shanghai
    with db.transaction() as s:
        dues = sorted(t.due_at for t in s.scalars(select(Timer).where(Timer.instance_id == iid)))
    assert dues == [datetime(2026, 1, 12, 2, 0, tzinfo=UTC), datetime(2026, 2, 12, 2, 0, tzinfo=UTC),
                    datetime(2026, 3, 12, 2, 0, tzinfo=UTC)]


@pytest.mark.parametrize(("changes", "error"), [
    ({"installments": [{"due_date": "2026-01-15", "amount": "400.00"}, {"due_date": "2026-02-15", "amount": "500.00"}],
      "due_date": None}, "the installments add up to 900.00, not to the IOU's amount 1000.00"),
    ({"customer_id": 99}, "customer 99 does not exist"),
    ({"responsible_agent": "nobody"}, "responsible_agent 'nobody' is not an active user"),
    ({"amount": "10.005"}, "amount 10.005 has more than two decimals"),
    ({"amount": "-5"}, "amount must be more than 0"),
    ({"due_date": "next week"}, "due_date 'next week' is not a date like 2026-03-31"),
    ({"currency": "yuan"}, "currency 'yuan' is not a three-letter code"),
    ({"phone": "call me"}, "'call me' is not a valid phone number"),
    ({"email": "wang at example"}, "email 'wang at example' is not an e-mail address"),
    ({"due_date": "2026-01-31", "installments": [{"due_date": "2026-01-15", "amount": "1000.00"}]},
     "due_date 2026-01-31 is not the last installment's due date 2026-01-15"),
])
def test_bad_start_data_is_refused_and_writes_nothing(collection, db, changes, error):
    with pytest.raises(InvalidInput, match=error.replace("(", r"\(").replace(")", r"\)")):
        start(collection, **changes)
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Iou)) == 0
        assert s.scalar(select(func.count()).select_from(ProcessInstance)) == 0


# --- the outbox ------------------------------------------------------------------------------


def test_the_reminder_sms_goes_to_the_customer_in_their_language_with_what_is_still_owed(collection, db):
    iid = start(collection)
    collection.correlate(ious.PAYMENT_MESSAGE, {"iou_id": 1, "installment_no": 1},
                         {"amount": "250.50", "method": "bank_transfer", "reference": "B-1"})
    advance(collection, timedelta(days=7, hours=2))
    [sms] = outbox(db, iid)
    key = the_iou(db)["business_key"]
    assert (sms.channel, sms.recipient) == ("sms", "+8613800138000")
    assert sms.text == f"温馨提示：您的欠款 {key}（第1期）749.50 CNY 将于 2026-01-15 到期。"


def test_an_e_mail_level_sends_an_e_mail_when_the_iou_has_an_address_else_an_sms(collection, db):
    with_mail = start(collection, customer_id=2, email="ann@example.com", amount="80.00")
    without = start(collection, customer_id=2, amount="90.00")
    _walk_to_review(collection, (with_mail, without))
    mails = [n for n in outbox(db, with_mail) if n.channel == "email"]
    assert [(m.recipient, m.subject) for m in mails] == [("ann@example.com",
                                                          f"Payment reminder: {the_iou(db, 1)['business_key']}")]
    assert "80.00 CNY" in mails[0].text and mails[0].text.startswith("Dear customer")
    assert [n.channel for n in outbox(db, without)] == ["sms", "sms", "sms"]  # -3, +3 and the +15 instead of mail
    assert all(n.recipient == "+14155550100" for n in outbox(db, without))


def _walk_to_review(engine: ProcessEngine, iids: tuple[int, ...]) -> None:
    """From the start to the +30 supervisor review, answering the two collection calls."""
    advance(engine, timedelta(days=10, hours=2))
    for iid in iids:
        complete(engine, iid, "call_customer", "li.na", {"call_outcome": "no_answer"})
    advance(engine, timedelta(days=7))
    for iid in iids:
        complete(engine, iid, "call_customer", "li.na", {"call_outcome": "no_answer"})
    advance(engine, timedelta(days=23))
    for iid in iids:
        assert [t["element_id"] for t in open_tasks(engine, iid)] == ["review_installment"]


# --- dunning levels as data ------------------------------------------------------------------


def test_a_level_added_while_an_iou_runs_is_applied_at_its_next_level(collection, db):
    iid = start(collection)
    advance(collection, timedelta(days=10, hours=2))  # reminder sent, collection call open
    complete(collection, iid, "call_customer", "li.na", {"call_outcome": "promised", "promised_date": "2026-01-16"})
    # waiting for +3 now; an administrator adds a level at +5 between +3 and +7
    with db.transaction() as s:
        s.add(DunningLevel(level=8, days=5, action="sms", message_en="Day five: {amount} {currency}",
                           message_zh="第五天：{amount} {currency}"))
    advance(collection, timedelta(days=3))  # 01-18: +3 SMS
    advance(collection, timedelta(days=2))  # 01-20: the new +5 SMS
    texts = [n.text for n in outbox(db, iid)]
    assert texts[-1] == "第五天：1000.00 CNY"
    assert len(texts) == 3
    with db.transaction() as s:
        item = s.scalar(select(IouInstallment))
        assert (item.dunning_level, item.dunning_days) == (8, 5)


def test_an_imported_table_replaces_the_levels_for_ious_already_running(collection, db, tmp_path):
    iid = start(collection)  # waits for the default -3 reminder on 01-12
    with db.transaction() as s:
        assert dunning.replace_levels(s, dunning.parse_csv(LADDER)) == {"replaced": 7, "imported": 3}
    advance(collection, timedelta(days=7, hours=2))  # the old reminder falls due: its wait re-reads the table
    advance(collection, timedelta(days=12))  # 01-24: -1 and +2 SMS, +5 write-off approval
    key = the_iou(db)["business_key"]
    assert [n.text for n in outbox(db, iid)] == [f"明天到期：1000.00 CNY（{key}）",
                                                 "已逾期：1000.00 CNY，自 2026-01-15"]
    assert [t["element_id"] for t in open_tasks(collection, iid)] == ["approve_write_off"]


def test_csv_rows_are_checked_and_every_problem_names_its_row():
    bad = ("level,days,action,message_en,message_zh\n"
           "1,-3,fax,Hello,你好\n"
           "2,three,sms,Hello,你好\n"
           "3,7,sms,Pay {amount} by {deadline},请付款 {amount}\n"
           "4,9,sms,,你好\n"
           "5,10,sms,only four columns\n")
    with pytest.raises(InvalidInput) as caught:
        dunning.parse_csv(bad)
    assert caught.value.detail["problems"] == [
        "row 2: action 'fax' is not one of: sms, email, call_task, supervisor_review, write_off_approval",
        "row 3: days must be a whole number, got 'three'",
        "row 4: message_en uses unknown placeholder(s) {deadline}; known: {amount}, {currency}, {due_date}, "
        "{business_key}, {installment}, {customer_name}, {days_overdue}",
        "row 5: message_en is empty: every level needs its message in English and Chinese",
        "row 6: has 4 columns, expected 5 (level,days,action,message_en,message_zh); quote messages that contain "
        "commas"]


@pytest.mark.parametrize(("rows", "problem"), [
    ("1,0,sms,a,b\n2,0,write_off_approval,a,b\n", "row 3: days 0 is already used on row 2"),
    ("1,0,sms,a,b\n1,5,write_off_approval,a,b\n", "row 3: level 1 is already on row 2"),
    ("1,5,sms,a,b\n2,3,write_off_approval,a,b\n",
     "row 3: level 2 comes after level 1 (row 2) but its days (3) are not later than 5"),
    ("1,0,sms,a,b\n2,5,call_task,a,b\n", "row 3: the last level (2) must be write_off_approval, got call_task"),
    ("", "the file has no levels"),
])
def test_the_ladder_must_be_ordered_and_end_with_a_write_off_approval(rows, problem):
    with pytest.raises(InvalidInput, match=problem.replace("(", r"\(").replace(")", r"\)")):
        dunning.parse_csv("level,days,action,message_en,message_zh\n" + rows)


def test_a_csv_without_the_header_is_refused():
    with pytest.raises(InvalidInput, match="the first row must be the header level,days,action,message_en,message_zh"):
        dunning.parse_csv("1,-3,sms,a,b\n")


# --- payments --------------------------------------------------------------------------------


def test_payments_are_exact_refuse_overpayment_and_closed_installments(collection, db):
    start(collection, amount="0.30", due_date="2026-01-15")
    with db.transaction() as s:
        first = ious.record_payment(1, 1, "0.10", "cash", "R-1", _session=s)
        second = ious.record_payment(1, 1, 0.1, "cash", "R-2", _session=s)  # a float is read as written, not binary
        assert (first["remaining"], second["remaining"]) == (Decimal("0.20"), Decimal("0.10"))
        with pytest.raises(InvalidInput, match="a payment of 0.11 CNY is more than the 0.10 CNY still owed on "
                                               "installment 1 of IOU-"):
            ious.record_payment(1, 1, "0.11", _session=s)
        again = ious.record_payment(1, 1, "0.10", "cash", "R-2", _session=s)  # the same notice twice: booked once
        assert again["duplicate"] and again["payment_id"] == second["payment_id"]
        with pytest.raises(InvalidInput, match="reference 'R-2' was already booked"):
            ious.record_payment(1, 1, "0.05", "cash", "R-2", _session=s)
        with pytest.raises(InvalidInput, match="method 'cheque' is not one of"):
            ious.record_payment(1, 1, "0.01", "cheque", _session=s)
        last = ious.record_payment(1, 1, "0.10", "card", "R-3", _session=s)
        assert last["settled"] and last["remaining"] == Decimal("0.00")
        with pytest.raises(IllegalState, match="installment 1 of IOU-.* is already paid"):
            ious.record_payment(1, 1, "0.01", _session=s)
        assert s.scalar(select(func.sum(IouPayment.amount))) == Decimal("0.30")


@pytest.mark.postgres
def test_two_payments_booked_at_once_both_count(pg_db):
    """PostgreSQL: the second booking waits for the first one's row lock, then sees what it paid."""
    clock.freeze(START)
    start(_engine(pg_db), amount="100.00")
    second: dict = {}

    def pay_too() -> None:
        with pg_db.transaction() as s:
            second.update(ious.record_payment(1, 1, "30.00", "cash", "B", _session=s))

    with pg_db.transaction() as s:
        ious.record_payment(1, 1, "50.00", "cash", "A", _session=s)
        other = threading.Thread(target=pay_too)
        other.start()
        other.join(timeout=1)
        assert other.is_alive()  # waiting for this transaction's lock on the installment
    other.join(timeout=10)
    assert second["remaining"] == Decimal("20.00")
    assert the_iou(pg_db)["installments"][0]["paid"] == Decimal("80.00")


def test_one_installment_paid_and_one_written_off_closes_partially_written_off(collection, db):
    with db.transaction() as s:
        dunning.replace_levels(s, dunning.parse_csv(LADDER))
    iid = start(collection, due_date=None, installments=[{"due_date": "2026-01-15", "amount": "300.00"},
                                                         {"due_date": "2026-01-20", "amount": "700.00"}])
    collection.correlate(ious.PAYMENT_MESSAGE, {"iou_id": 1, "installment_no": 2},
                         {"amount": "200.00", "method": "cash", "reference": "C-1"})
    collection.correlate(ious.PAYMENT_MESSAGE, {"iou_id": 1, "installment_no": 1},
                         {"amount": "300.00", "method": "cash", "reference": "C-2"})
    advance(collection, timedelta(days=21))  # 01-26: installment 2 reaches its +5 write-off approval
    complete(collection, iid, "approve_write_off", "zhang.min",
             {"write_off_decision": "approve", "write_off_reason": "Customer moved abroad"})
    detail = collection.instance_detail(iid)
    assert detail["status"] == "completed"
    assert detail["data"]["closing"] == {"status": "partially_written_off", "paid": "500.00",
                                         "written_off": "500.00", "currency": "CNY"}
    iou = the_iou(db)
    assert (iou["status"], iou["paid"], iou["written_off"], iou["remaining"]) == \
           ("partially_written_off", Decimal("500.00"), Decimal("500.00"), Decimal("0.00"))
    assert [i["status"] for i in iou["installments"]] == ["paid", "written_off"]


def test_paid_while_the_write_off_approval_is_open_closes_the_approval_and_the_iou_as_paid(collection, db):
    with db.transaction() as s:
        dunning.replace_levels(s, dunning.parse_csv(LADDER))
    iid = start(collection)
    advance(collection, timedelta(days=16))  # 01-21: the +5 write-off approval is open
    with db.transaction() as s:
        ious.record_payment(1, 1, "1000.00", "bank_transfer", "LATE-1", _session=s)
    told = collection.correlate(ious.PAYMENT_MESSAGE, {"iou_id": 1, "installment_no": 1},
                                {"payment_id": 1, "amount": "1000.00"})
    assert told.delivered == [iid] and told.buffered is None  # the open approval takes it and goes away
    detail = collection.instance_detail(iid)
    assert detail["tasks"] == []
    assert detail["status"] == "completed"
    assert detail["data"]["closing"] == {"status": "paid", "paid": "1000.00", "written_off": "0.00",
                                         "currency": "CNY"}


def test_a_payment_message_reaches_only_its_own_installment(collection, db):
    iid = start(collection, due_date=None, installments=[{"due_date": "2026-01-15", "amount": "500.00"},
                                                         {"due_date": "2026-02-15", "amount": "500.00"}])
    other = start(collection, amount="50.00")
    result = collection.correlate(ious.PAYMENT_MESSAGE, {"iou_id": 1, "installment_no": 2},
                                  {"amount": "500.00", "method": "cash", "reference": "X"})
    assert result.delivered == [iid]
    assert [(i["number"], i["status"]) for i in the_iou(db)["installments"]] == [(1, "open"), (2, "paid")]
    assert the_iou(db, 2)["status"] == "open" and collection.instance_detail(other)["status"] == "waiting"
    with db.transaction() as s:
        received = s.scalars(select(InstanceEvent).where(InstanceEvent.kind == "message_received")).all()
        assert [(e.instance_id, e.element_id) for e in received] == [(iid, "wait_payment")]


# --- open tasks: SLA escalation, and dunning and payments meanwhile ---------------------------


def _tasks(engine: ProcessEngine, iid: int, element: str) -> list[dict]:
    return [t for t in open_tasks(engine, iid) if t["element_id"] == element]


def _in_app(db, user: str) -> list[Notification]:
    with db.transaction() as s:
        return list(s.scalars(select(Notification).where(Notification.channel == "in_app",
                                                         Notification.recipient == user)))


def test_the_collection_call_is_escalated_after_one_and_two_working_days_and_stays_with_the_agent(collection, db):
    iid = start(collection)
    advance(collection, timedelta(days=10, hours=2))  # Thursday 01-15 11:00: the call opened at 10:00
    [call] = _tasks(collection, iid, "call_customer")
    opened = datetime.fromisoformat(call["created_at"])
    # one working day of the office-hours calendar (09:00-12:00, 13:00-18:00 Shanghai): Friday, same time
    assert datetime.fromisoformat(call["due_at"]) == opened + timedelta(days=1)
    assert (call["escalation_level"], call["overdue"]) == (0, False)
    advance(collection, timedelta(hours=23, minutes=1))  # Friday 10:01: one working day is over
    [late] = _tasks(collection, iid, "call_customer")
    assert late["id"] == call["id"] and late["assignee"] == "li.na"  # non-interrupting: still the agent's
    assert (late["escalation_level"], late["overdue"], late["priority"]) == (1, True, call["priority"] + 1)
    assert len(_in_app(db, "zhang.min")) == 1  # the collections supervisors are told
    advance(collection, timedelta(days=3))  # Monday 01-19 10:00: the second working day is over too
    [later] = _tasks(collection, iid, "call_customer")
    assert later["id"] == call["id"] and (later["escalation_level"], later["priority"]) == (2, call["priority"] + 2)
    assert len(_in_app(db, "zhang.min")) == 2
    assert _in_app(db, "li.na") == []  # the agent is not in the supervisors' group


def test_levels_that_fall_due_while_the_call_is_open_give_no_second_call_and_no_catch_up_sms(collection, db):
    iid = start(collection)
    advance(collection, timedelta(days=10, hours=2))  # 01-15: reminder SMS, then the collection call
    advance(collection, timedelta(days=8))  # 01-23: the +3 SMS and the +7 call fell due meanwhile
    assert len(_tasks(collection, iid, "call_customer")) == 1  # one call task for the installment, never two
    assert [n.channel for n in outbox(db, iid) if n.channel != "in_app"] == ["sms"]  # nothing sent meanwhile
    complete(collection, iid, "call_customer", "li.na", {"call_outcome": "promised", "promised_date": "2026-01-26"})
    assert open_tasks(collection, iid) == []  # the late call stands in for the +3 SMS and the +7 call
    with db.transaction() as s:
        item = s.scalar(select(IouInstallment))
        assert (item.dunning_level, item.dunning_days) == (4, 7)
    advance(collection, timedelta(days=6, hours=23))  # 01-30 10:00: the +15 level is next (no e-mail: an SMS)
    sent = [n for n in outbox(db, iid) if n.channel != "in_app"]
    assert [n.channel for n in sent] == ["sms", "sms"]
    assert sent[-1].text.startswith("尊敬的客户") and "1000.00 CNY" in sent[-1].text  # the +15 text, not the +3 one


def test_a_supervisor_review_that_falls_due_while_a_call_is_open_comes_right_after_it(collection, db):
    iid = start(collection)
    advance(collection, timedelta(days=10, hours=2))  # 01-15: the collection call, left open for weeks
    advance(collection, timedelta(days=31))  # 02-15: the +30 review fell due meanwhile
    assert [t["element_id"] for t in open_tasks(collection, iid)] == ["call_customer"]
    complete(collection, iid, "call_customer", "li.na", {"call_outcome": "no_answer"})
    assert [t["element_id"] for t in open_tasks(collection, iid)] == ["review_installment"]
    with db.transaction() as s:
        assert s.scalar(select(IouInstallment)).dunning_level == 5  # +3, +7, +15 passed over; +30 is the review
    assert [n.channel for n in outbox(db, iid) if n.channel != "in_app"] == ["sms"]


def test_paid_in_full_while_the_call_is_open_closes_the_call_task(collection, db):
    iid = start(collection)
    advance(collection, timedelta(days=10, hours=2))
    [call] = _tasks(collection, iid, "call_customer")
    with db.transaction() as s:  # as `ious pay` does: booked first, then the message
        booked = ious.record_payment(1, 1, "1000.00", "bank_transfer", "B-77", "li.na", _session=s)
    result = collection.correlate(ious.PAYMENT_MESSAGE, {"iou_id": 1, "installment_no": 1},
                                  {"payment_id": booked["payment_id"], "amount": "1000.00", "settled": True})
    assert result.delivered == [iid] and result.buffered is None
    detail = collection.instance_detail(iid)
    assert detail["status"] == "completed" and detail["tasks"] == []
    assert detail["data"]["closing"] == {"status": "paid", "paid": "1000.00", "written_off": "0.00", "currency": "CNY"}
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(IouPayment)) == 1  # booked once
        received = s.scalars(select(InstanceEvent).where(InstanceEvent.kind == "message_received")).all()
        assert [e.element_id for e in received] == ["paid_during_call"]
    with db.transaction() as s:
        assert s.get(HumanTask, call["id"]).status == "cancelled"  # closed by the payment, not left open


def test_a_partial_payment_while_the_call_is_open_gives_the_call_again_with_what_is_still_owed(collection, db):
    iid = start(collection)
    advance(collection, timedelta(days=10, hours=2))
    [call] = _tasks(collection, iid, "call_customer")
    result = collection.correlate(ious.PAYMENT_MESSAGE, {"iou_id": 1, "installment_no": 1},
                                  {"amount": "400.00", "method": "wechat_pay", "reference": "WX-400"})
    assert result.delivered == [iid]
    [again] = _tasks(collection, iid, "call_customer")
    assert again["id"] != call["id"] and again["assignee"] == "li.na"
    step = collection.task_detail(again["id"])["data"]["step"]
    assert (step["level"], step["remaining"]) == (2, "600.00")  # the same level, with what is still owed
    assert "600.00 CNY" in step["text"]["zh"]
    assert the_iou(db)["installments"][0]["remaining"] == Decimal("600.00")
    assert [p["reference"] for p in the_iou(db)["installments"][0]["payments"]] == ["WX-400"]  # booked once
    complete(collection, iid, "call_customer", "li.na", {"call_outcome": "paying"})
    complete(collection, iid, "enter_payment", "li.na", {"payment_amount": "600.00", "payment_method": "cash"})
    assert collection.instance_detail(iid)["status"] == "completed"


def test_paid_in_full_by_the_bank_while_the_agent_enters_a_payment_closes_the_form_and_books_once(collection, db):
    iid = start(collection)
    advance(collection, timedelta(days=10, hours=2))
    complete(collection, iid, "call_customer", "li.na", {"call_outcome": "paying"})
    assert [t["element_id"] for t in open_tasks(collection, iid)] == ["enter_payment"]
    collection.correlate(ious.PAYMENT_MESSAGE, {"iou_id": 1, "installment_no": 1},
                         {"amount": "1000.00", "method": "alipay", "reference": "ALI-9"})
    detail = collection.instance_detail(iid)
    assert detail["status"] == "completed" and detail["tasks"] == []
    assert the_iou(db)["paid"] == Decimal("1000.00")


def test_a_payment_on_one_installment_closes_only_that_installments_call(collection, db):
    iid = start(collection, due_date=None, installments=[{"due_date": "2026-01-15", "amount": "500.00"},
                                                         {"due_date": "2026-01-19", "amount": "500.00"}])
    advance(collection, timedelta(days=14, hours=2))  # 01-19 11:00: both installments' calls are open
    calls = _tasks(collection, iid, "call_customer")
    assert len(calls) == 2
    collection.correlate(ious.PAYMENT_MESSAGE, {"iou_id": 1, "installment_no": 2},
                         {"amount": "500.00", "method": "cash", "reference": "C-2"})
    [left] = _tasks(collection, iid, "call_customer")
    assert left["id"] in {c["id"] for c in calls}
    assert [i["status"] for i in the_iou(db)["installments"]] == ["open", "paid"]


def test_a_late_call_is_escalated_alone_not_the_other_installments_call(collection, db):
    """Each installment has its own call; the SLA timer of one is about that call only."""
    iid = start(collection, due_date=None, installments=[{"due_date": "2026-01-14", "amount": "500.00"},
                                                         {"due_date": "2026-01-15", "amount": "500.00"}])
    advance(collection, timedelta(days=10, hours=5))  # Thursday 01-15 14:00
    first, second = sorted(_tasks(collection, iid, "call_customer"), key=lambda t: t["id"])
    assert (first["escalation_level"], first["overdue"]) == (1, True)  # opened Wednesday: a working day ago
    assert (second["escalation_level"], second["overdue"]) == (0, False)  # opened this morning: on time
    assert second["priority"] == first["priority"] - 1
    advance(collection, timedelta(days=1))  # Friday 14:00: the first is two working days late, the second one
    levels = {t["id"]: t["escalation_level"] for t in _tasks(collection, iid, "call_customer")}
    assert levels == {first["id"]: 2, second["id"]: 1}


def test_an_old_debt_entered_late_skips_the_past_reminders_and_opens_the_call_at_once(collection, db):
    iid = start(collection, due_date="2026-01-01")  # entered on 01-05: four days overdue
    assert [t["element_id"] for t in open_tasks(collection, iid)] == ["call_customer"]
    assert [n for n in outbox(db, iid) if n.channel != "in_app"] == []  # no "due on 01-01" reminder sent now
    complete(collection, iid, "call_customer", "li.na", {"call_outcome": "no_answer"})
    # the +3 SMS fell due before the call was made: passed over; the +7 call is next, on 01-08
    advance(collection, timedelta(days=3, hours=2))
    assert [t["element_id"] for t in open_tasks(collection, iid)] == ["call_customer"]
    assert [n for n in outbox(db, iid) if n.channel != "in_app"] == []


def test_a_review_left_two_working_days_goes_to_the_duty_supervisors_and_stays_with_its_group(collection, db):
    with db.transaction() as s:
        identity.ensure_user(s, "ma.jun", groups=["supervisors"])  # collections-supervisors has none of its own
    iid = start(collection)
    _walk_to_review(collection, (iid,))  # Saturday 02-14 10:00: the +30 review opened
    [review] = _tasks(collection, iid, "review_installment")
    assert datetime.fromisoformat(review["due_at"]) == datetime(2026, 2, 17, 10, 0, tzinfo=UTC)  # Tue 18:00 Shanghai
    advance(collection, timedelta(days=3, hours=8))  # Tuesday 18:00+: two working days are over
    [late] = _tasks(collection, iid, "review_installment")
    assert late["id"] == review["id"] and late["candidate_groups"] == ["collections-supervisors"]
    assert (late["escalation_level"], late["overdue"]) == (1, True)
    [told] = _in_app(db, "ma.jun")
    assert told.instance_id == iid
    assert _in_app(db, "zhang.min") == []
