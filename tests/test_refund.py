"""The refund process (bpmn/refund.bpmn) and its records, beyond what scenarios can see.

Scenario files (bpmn/scenarios/refund.scenario.yaml) walk every path of the diagram; these
tests look at what the paths leave behind: the refund row and its approvals, the SMS in
the outbox, a second open refund for one order, money that stays exact, the report and
its CLI, and the payout task after the escalation. They run on SQLite and PostgreSQL.
"""
from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from support import settings_for

from app import create_app
from app import hotline as hotline_of
from app.engine import ProcessEngine, clock
from app.errors import IllegalState, InvalidInput
from app.models import HumanTask, ProcessInstance, TaskStatus
from app.models.notification import Notification
from app.models.refund import Refund, RefundApproval
from app.services import customers, identity, refunds

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ["refund.bpmn", "refund_approval.dmn", "escalation.bpmn"]  # the refund process and what it calls
STAFF = {"li.na": ["hotline"], "gao.yan": ["hotline-leads"], "liu.yang": ["finance"], "he.ming": ["managers"]}
START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Beijing


def _library(tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    folder.mkdir()
    for name in LIBRARY:
        shutil.copy(ROOT / "bpmn" / name, folder / name)
    return folder


@pytest.fixture
def hotline(db, tmp_path):
    clock.freeze(START)
    engine = ProcessEngine(db, ROOT / "forms")
    with db.transaction() as s:
        for user, groups in STAFF.items():
            identity.ensure_user(s, user, groups=groups)
    engine.deploy([_library(tmp_path)])
    return engine


def _request(**changes) -> dict:
    return {"caller_phone": "138 0013 8000", "caller_name": "王芳", "language": "zh",
            "order_reference": "ORD-2026-0042", "amount": "150.00", "currency": "CNY",
            "refund_reason": "charged_twice", "method": "original_payment", **changes}


def _open_task(engine: ProcessEngine, iid: int, element: str) -> dict:
    tasks = [t for t in engine.instance_detail(iid)["tasks"] if t["element_id"] == element]
    assert len(tasks) == 1, engine.instance_detail(iid)["tasks"]
    return tasks[0]


def _complete(engine: ProcessEngine, iid: int, element: str, actor: str, data: dict) -> None:
    engine.complete(_open_task(engine, iid, element)["id"], actor, data)


def _requested(engine: ProcessEngine, **changes) -> int:
    iid = engine.start("refund", {"caller_phone": "13800138000", "language": "zh"}, "li.na")
    _complete(engine, iid, "complete_request", "li.na", _request(**changes))
    return iid


def _refund(db, iid: int) -> Refund:
    with db.transaction() as s:
        refund = s.scalar(select(Refund).where(Refund.instance_id == iid))
        refund.approvals  # noqa: B018 - loaded before the session closes
        s.expunge_all()
        return refund


def _sms(db, iid: int) -> list[tuple[str, str]]:
    with db.transaction() as s:
        return [(n.recipient, n.text) for n in s.scalars(select(Notification).where(
            Notification.instance_id == iid, Notification.channel == "sms").order_by(Notification.id))]


def test_a_paid_refund_keeps_its_request_every_approval_and_the_payout(hotline):
    db = hotline.db
    with db.transaction() as s:
        cid = customers.register("13800138000", "王芳", "zh", _session=s)["customer_id"]
    iid = hotline.correlate("refund.requested", payload={
        "customer_id": cid, "caller_phone": "13800138000", "caller_name": "王芳", "language": "zh",
        "reason": "refund", "notes": "Charged twice", "source_ticket": "CALL-2026-000009"}).started[0]
    _complete(hotline, iid, "complete_request", "li.na",
              _request(amount="1999.99", method="bank_transfer", account="6222 0202 0000 1234 567",
                       order_reference=" ord-2026-0042 ", details="March bill debited twice"))
    clock.advance(hours=1)
    _complete(hotline, iid, "approve_lead", "gao.yan", {"lead_decision": "approve", "lead_reason": "Confirmed"})
    clock.advance(hours=1)
    _complete(hotline, iid, "approve_finance", "liu.yang", {"finance_decision": "approve"})
    clock.advance(hours=1)
    _complete(hotline, iid, "pay_out", "liu.yang", {"payout_reference": "BT-7781", "paid_amount": "1999.99"})

    refund = _refund(db, iid)
    with db.transaction() as s:
        ticket = s.get(ProcessInstance, iid)
        assert ticket.status == "completed" and ticket.customer_id == cid
        assert refund.business_key == ticket.business_key and refund.business_key.startswith("RF-")
    assert (refund.status, refund.order_reference, refund.amount, refund.currency) == (
        "paid", "ORD-2026-0042", Decimal("1999.99"), "CNY")
    assert isinstance(refund.amount, Decimal) and isinstance(refund.paid_amount, Decimal)
    assert (refund.customer_id, refund.phone, refund.language, refund.source_ticket) == (
        cid, "+8613800138000", "zh", "CALL-2026-000009")
    assert (refund.method, refund.account, refund.reason, refund.details) == (
        "bank_transfer", "6222 0202 0000 1234 567", "charged_twice", "March bill debited twice")
    assert refund.approval_chain == ["lead", "finance"]
    assert (refund.requested_by, refund.requested_at) == ("li.na", START)
    assert [(a.level, a.decision, a.reason, a.decided_by, a.decided_at) for a in refund.approvals] == [
        ("lead", "approve", "Confirmed", "gao.yan", START + timedelta(hours=1)),
        ("finance", "approve", "", "liu.yang", START + timedelta(hours=2))]
    assert refund.decided_at == START + timedelta(hours=2)
    assert (refund.paid_amount, refund.payout_reference, refund.paid_by, refund.paid_at, refund.payout_note) == (
        Decimal("1999.99"), "BT-7781", "liu.yang", START + timedelta(hours=3), "")
    assert _sms(db, iid) == [("+8613800138000", f"【热线】您的退款{refund.business_key}（订单ORD-2026-0042）已支付"
                                                 "1999.99 CNY，支付单号BT-7781。感谢您的耐心等待。")]


def test_a_rejection_is_recorded_with_who_and_why_and_texted_in_the_customers_language(hotline):
    iid = _requested(hotline, caller_phone="13912345678", language="en", amount="5000")
    _complete(hotline, iid, "approve_lead", "gao.yan", {"lead_decision": "approve"})
    _complete(hotline, iid, "approve_finance", "liu.yang",
              {"finance_decision": "reject", "finance_reason": "Only one payment reached us"})

    refund = _refund(hotline.db, iid)
    assert refund.status == "rejected" and refund.approval_chain == ["lead", "finance", "manager"]
    assert [(a.level, a.decision, a.decided_by) for a in refund.approvals] == [
        ("lead", "approve", "gao.yan"), ("finance", "reject", "liu.yang")]
    assert refund.approvals[1].reason == "Only one payment reached us"
    assert refund.paid_amount is None and refund.paid_at is None
    assert not any(t["element_id"] == "approve_manager" for t in hotline.instance_detail(iid)["tasks"])
    assert _sms(hotline.db, iid) == [(
        "+8613912345678", f"Hotline: your refund request {refund.business_key} (order ORD-2026-0042, 5000.00 CNY) "
                          "was not approved. Reason: Only one payment reached us. Please call us with any questions.")]


def test_a_second_open_refund_for_the_same_order_is_refused_until_the_first_is_settled(hotline):
    first = _requested(hotline)
    first_key = _refund(hotline.db, first).business_key
    second = hotline.start("refund", {"caller_phone": "13800138000"}, "li.na")
    with pytest.raises(InvalidInput) as refused:  # the same order, written differently
        _complete(hotline, second, "complete_request", "li.na", _request(order_reference="ord-2026-0042"))
    assert refused.value.message == (f"order_reference: order ORD-2026-0042 already has an open refund {first_key} "
                                     "(requested, 150.00 CNY); finish or reject that one first")
    assert _open_task(hotline, second, "complete_request")["status"] == "open"  # the agent can still fix it
    assert hotline.instance_detail(second)["incidents"] == []

    # Approved is still open: a second payout must not be possible.
    _complete(hotline, first, "approve_lead", "gao.yan", {"lead_decision": "approve"})
    with pytest.raises(InvalidInput, match="already has an open refund .* \\(approved, 150.00 CNY\\)"):
        _complete(hotline, second, "complete_request", "li.na", _request())

    # Once the first is paid, another refund for the order may be asked for; it names the earlier one.
    _complete(hotline, first, "pay_out", "liu.yang", {"payout_reference": "T1", "paid_amount": "150"})
    _complete(hotline, second, "complete_request", "li.na", _request(amount="20"))
    assert hotline.instance_detail(second)["data"]["refund"]["earlier_refunds"] == [first_key]
    with hotline.db.transaction() as s:
        assert sorted(s.scalars(select(Refund.status))) == ["paid", "requested"]


def test_the_database_refuses_two_open_refunds_for_one_order_even_past_the_check(hotline):
    first = _requested(hotline)
    with hotline.db.transaction() as s:
        row = s.scalar(select(Refund).where(Refund.instance_id == first))
        copy = Refund(**{c: getattr(row, c) for c in ("order_reference", "amount", "currency", "reason", "method",
                                                        "phone", "status")}, business_key="RF-COPY",
                      approval_chain=["lead"])
        with pytest.raises(Exception, match="(?i)unique"), s.begin_nested():
            s.add(copy)


def test_money_stays_decimal_and_exact(hotline):
    assert refunds.parse_money("0.1", "amount") + refunds.parse_money("0.2", "amount") == Decimal("0.30")
    assert refunds.parse_money(0.1, "amount") == Decimal("0.10")  # a float from a script: its text, not its binary
    assert refunds.parse_money("10.500", "amount") == Decimal("10.50")  # a trailing zero is not a third place
    for bad, message in [("10.005", "amount: 10.005 has more than 2 decimal places"),
                         ("1e-3", "amount: 1e-3 has more than 2 decimal places"),
                         ("-0.01", "amount: must be more than 0 (got -0.01)"),
                         ("0", "amount: must be more than 0 (got 0)"),
                         ("NaN", "amount: 'NaN' is not an amount of money"),
                         ("Infinity", "amount: 'Infinity' is not an amount of money"),
                         (True, "amount: an amount is needed"),
                         ("10000000000", "amount: 10000000000 is more than 9999999999.99")]:
        with pytest.raises(InvalidInput) as exc:
            refunds.parse_money(bad, "amount")
        assert exc.value.message == message

    a = _requested(hotline, order_reference="ORD-A", amount="0.1")
    b = _requested(hotline, order_reference="ORD-B", amount="0.2")
    with hotline.db.transaction() as s:
        amounts = sorted(s.scalars(select(Refund.amount).where(Refund.instance_id.in_([a, b]))))
        report = refunds.report(s)
    assert amounts == [Decimal("0.10"), Decimal("0.20")]
    assert report["totals"] == [{"currency": "CNY", "count": 2, "amount": Decimal("0.30"),
                                 "paid_amount": Decimal("0.00")}]
    assert str(report["totals"][0]["amount"]) == "0.30"
    # The amount travels through the ticket's stored state as Decimal, not float.
    detail = hotline.instance_detail(a)["data"]
    assert detail["amount"] == "0.1" and detail["refund"]["amount"] == "0.10"


@pytest.mark.parametrize("amount, currency, chain", [
    ("200", "CNY", ["lead"]),
    ("200.01", "CNY", ["lead", "finance"]),
    ("2000", "CNY", ["lead", "finance"]),
    ("2000.01", "CNY", ["lead", "finance", "manager"]),
    ("1", "HKD", ["lead", "finance", "manager"]),
])
def test_the_decision_table_picks_the_chain_by_amount_and_currency(hotline, amount, currency, chain):
    iid = _requested(hotline, amount=amount, currency=currency)
    assert hotline.instance_detail(iid)["data"]["approval_chain"] == chain
    assert _refund(hotline.db, iid).approval_chain == chain


def test_decisions_are_taken_in_the_chains_order_and_never_after_the_end(hotline):
    iid = _requested(hotline, amount="300")
    refund_id = _refund(hotline.db, iid).id
    with hotline.db.transaction() as s:
        with pytest.raises(IllegalState, match="waits for the lead level, not 'finance'"):
            refunds.decide(refund_id, "finance", "approve", _session=s, _instance_id=iid)
        with pytest.raises(InvalidInput, match="reason: a rejection needs a reason"):
            refunds.decide(refund_id, "lead", "reject", "  ", _session=s, _instance_id=iid)
        with pytest.raises(InvalidInput, match="decision: must be one of: approve, reject"):
            refunds.decide(refund_id, "lead", "maybe", _session=s, _instance_id=iid)
        refunds.decide(refund_id, "lead", "reject", "Duplicate request", _session=s, _instance_id=iid)
        with pytest.raises(IllegalState, match="is already rejected"):
            refunds.decide(refund_id, "finance", "approve", _session=s, _instance_id=iid)
        with pytest.raises(IllegalState, match="is rejected, not approved: it cannot be paid"):
            refunds.record_payout(refund_id, "T1", "300", _session=s, _instance_id=iid)
        s.rollback()


def test_the_payout_task_is_escalated_after_two_days_and_stays_with_finance(hotline):
    iid = _requested(hotline, amount="120")
    _complete(hotline, iid, "approve_lead", "gao.yan", {"lead_decision": "approve"})
    before = _open_task(hotline, iid, "pay_out")
    clock.advance(days=2, seconds=1)
    hotline.fire_due_timers()
    with hotline.db.transaction() as s:
        task = s.get(HumanTask, before["id"])
        assert task.status == TaskStatus.OPEN and task.candidate_groups == ["finance"]
        assert (task.escalation_level, task.overdue, task.priority) == (1, True, before["priority"] + 1)
    _complete(hotline, iid, "pay_out", "liu.yang", {"payout_reference": "T9", "paid_amount": "120"})
    assert hotline.instance_detail(iid)["status"] == "completed"
    assert _refund(hotline.db, iid).status == "paid"


def test_refunds_list_shows_refunds_and_totals_per_currency(hotline, db, tmp_path, monkeypatch):
    paid = _requested(hotline, order_reference="ORD-1", amount="100.10")
    _complete(hotline, paid, "approve_lead", "gao.yan", {"lead_decision": "approve"})
    _complete(hotline, paid, "pay_out", "liu.yang", {"payout_reference": "T1", "paid_amount": "100",
                                                      "payout_note": "0.10 bank fee"})
    _requested(hotline, order_reference="ORD-2", amount="0.20")
    _requested(hotline, order_reference="ORD-3", amount="9.99", currency="USD")

    app = create_app(settings_for(tmp_path, monkeypatch, database_url=db.url))
    try:
        runner = app.test_cli_runner()
        out = json.loads(runner.invoke(args=["refunds", "list", "--json"]).stdout)
        assert [r["order_reference"] for r in out["refunds"]] == ["ORD-3", "ORD-2", "ORD-1"]
        assert out["totals"] == [{"currency": "CNY", "count": 2, "amount": "100.30", "paid_amount": "100.00"},
                                 {"currency": "USD", "count": 1, "amount": "9.99", "paid_amount": "0.00"}]
        paid_only = json.loads(runner.invoke(args=["refunds", "list", "--status", "paid", "--json"]).stdout)
        assert [(r["order_reference"], r["paid_amount"], [a["decided_by"] for a in r["approvals"]])
                for r in paid_only["refunds"]] == [("ORD-1", "100.00", ["gao.yan"])]
        later = json.loads(runner.invoke(args=["refunds", "list", "--since", "2026-03-03", "--json"]).stdout)
        assert later == {"refunds": [], "totals": []}
        human = runner.invoke(args=["refunds", "list"]).stdout
        assert "total CNY: 2 refund(s), 100.30 requested, 100.00 paid" in human
        bad = runner.invoke(args=["refunds", "list", "--since", "next week"])
        assert bad.exit_code == 1 and "--since: 'next week' is not a date" in bad.stderr
    finally:
        hotline_of(app).close()


def test_approvals_are_one_row_per_level(hotline):
    iid = _requested(hotline, amount="100")
    with hotline.db.transaction() as s:
        refund_id = s.scalar(select(Refund.id).where(Refund.instance_id == iid))
        s.add(RefundApproval(refund_id=refund_id, level="lead", decision="approve", decided_by="x"))
        s.flush()
        with pytest.raises(Exception, match="(?i)unique"), s.begin_nested():
            s.add(RefundApproval(refund_id=refund_id, level="lead", decision="reject", decided_by="y"))
        s.rollback()


@pytest.mark.postgres
def test_two_agents_recording_the_same_order_at_once_get_one_refund(pg_db, tmp_path):
    """Both pass the open-refund check before either commits; the unique index refuses one of them,
    inside a savepoint, so the agent gets the same clear error and the engine's step is not broken."""
    engine = ProcessEngine(pg_db, ROOT / "forms")
    with pg_db.transaction() as s:
        for user, groups in STAFF.items():
            identity.ensure_user(s, user, groups=groups)
    engine.deploy([_library(tmp_path)])
    for n in range(4):
        order = f"RACE-{n}"
        a, b = (engine.start("refund", {"caller_phone": "13800138000"}, "li.na") for _ in range(2))
        ta, tb = (_open_task(engine, iid, "complete_request")["id"] for iid in (a, b))
        barrier = threading.Barrier(2)

        def submit(task_id: int, order: str = order, barrier: threading.Barrier = barrier) -> Exception | None:
            barrier.wait()
            try:
                engine.complete(task_id, "li.na", _request(order_reference=order))
            except Exception as exc:  # noqa: BLE001 - the outcome is what the test looks at
                return exc
            return None

        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(submit, (ta, tb)))
        failures = [o for o in outcomes if o is not None]
        assert len(failures) == 1, f"round {n}: {outcomes}"
        assert isinstance(failures[0], InvalidInput), f"round {n}: {failures[0]!r}"
        assert f"order {order} already has an open refund" in failures[0].message
        with pg_db.transaction() as s:
            assert len(s.scalars(select(Refund).where(Refund.order_reference == order)).all()) == 1


def test_when_the_check_misses_a_concurrent_refund_the_index_refuses_it_with_the_same_error(hotline, monkeypatch):
    first = _requested(hotline)
    first_key = _refund(hotline.db, first).business_key
    real = refunds.open_refund_for
    calls = []

    def blind_first_time(session, order_reference):  # as if the other agent had not committed yet
        calls.append(order_reference)
        return None if len(calls) == 1 else real(session, order_reference)

    monkeypatch.setattr(refunds, "open_refund_for", blind_first_time)
    second = hotline.start("refund", {"caller_phone": "13800138000"}, "li.na")
    with pytest.raises(InvalidInput, match=f"already has an open refund {first_key}"):
        _complete(hotline, second, "complete_request", "li.na", _request())
    assert len(calls) == 2  # the check, then the lookup after the index refused the row
    assert hotline.instance_detail(second)["incidents"] == []
