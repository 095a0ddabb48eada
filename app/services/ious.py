"""IOUs (credit sales): the operations the IOU collection diagram calls, and the queries behind them.

``iou.create`` writes an IOU and its installments when the collection process starts;
``iou.next_dunning_step`` tells each installment's loop what to do next and when (read from
the dunning table at run time, see ``dunning.py``); ``iou.record_payment`` books a payment
(also from the command line, which then sends ``iou.payment_recorded`` to the process);
``iou.decide_write_off`` and ``iou.close`` settle the rest. Money is ``Decimal`` with a
currency; an amount with more than two decimals is refused, never rounded.
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import IllegalState, InvalidInput, NotFound
from app.models import Customer, ProcessInstance, User, utcnow
from app.models.iou import PAYMENT_METHODS, Iou, IouInstallment, IouPayment

from . import dunning
from .customers import normalize_phone
from .registry import operation

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999.99")  # Numeric(12, 2)
MAX_INSTALLMENTS = 120
PAYMENT_MESSAGE = "iou.payment_recorded"  # the message that tells the process about a payment
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STAFF_ACTIONS = ("call_task", "supervisor_review", "write_off_approval")  # levels that give staff a task
PASSABLE_ACTIONS = ("sms", "email", "call_task")  # passed over when they fell due while a task was open
_SUBJECT = {"en": "Payment reminder: {business_key}", "zh": "付款提醒：{business_key}"}


# --- values ---------------------------------------------------------------------------------


def money(value: Any, what: str = "amount") -> Decimal:
    """A positive amount with at most two decimals (``"100.5"``, ``100``, ``Decimal``), or InvalidInput."""
    if isinstance(value, bool) or value is None or value == "":
        raise InvalidInput(f"{what} is needed (a positive amount like 100.00)", field=what)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise InvalidInput(f"{what} '{value}' is not an amount (write it like 100.00)", field=what) from exc
    if not amount.is_finite() or amount <= 0:
        raise InvalidInput(f"{what} must be more than 0, got {value}", field=what)
    if amount != amount.quantize(CENT):
        raise InvalidInput(f"{what} {value} has more than two decimals", field=what)
    if amount > MAX_AMOUNT:
        raise InvalidInput(f"{what} {value} is too large (at most {MAX_AMOUNT})", field=what)
    return amount.quantize(CENT)


def _date(value: Any, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise InvalidInput(f"{what} '{value}' is not a date like 2026-03-31", field=what) from exc


def _when(at: Any) -> datetime:
    if at is None:
        return utcnow()
    moment = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _currency(value: Any) -> str:
    code = str(value or "CNY").strip().upper()
    if not _CURRENCY.match(code):
        raise InvalidInput(f"currency '{value}' is not a three-letter code like CNY", field="currency")
    return code


def _installment_plan(amount: Decimal, due_date: Any, installments: Any) -> list[tuple[date, Decimal]]:
    if not installments:
        if due_date in (None, ""):
            raise InvalidInput("due_date is needed (or a list of installments with their due dates)",
                               field="due_date")
        return [(_date(due_date, "due_date"), amount)]
    if not isinstance(installments, list) or len(installments) > MAX_INSTALLMENTS:
        raise InvalidInput(f"installments must be a list of at most {MAX_INSTALLMENTS} "
                           "{due_date, amount} objects", field="installments")
    plan = []
    for n, item in enumerate(installments, 1):
        if not isinstance(item, dict):
            raise InvalidInput(f"installment {n} must be an object {{due_date, amount}}", field="installments")
        plan.append((_date(item.get("due_date"), f"installment {n} due_date"),
                     money(item.get("amount"), f"installment {n} amount")))
    total = sum((a for _, a in plan), Decimal("0.00"))
    if total != amount:
        raise InvalidInput(f"the installments add up to {total}, not to the IOU's amount {amount}; "
                           "they must sum exactly to it", field="installments")
    plan.sort(key=lambda p: p[0])
    if due_date not in (None, "") and _date(due_date, "due_date") != plan[-1][0]:
        raise InvalidInput(f"due_date {due_date} is not the last installment's due date {plan[-1][0]}; "
                           "leave it out when installments are given", field="due_date")
    return plan


# --- finding --------------------------------------------------------------------------------


def find(session: Session, ref: Any) -> Iou:
    """An IOU by its id (``12``) or its ticket's business key (``IOU-2026-000012``)."""
    text = str(ref).strip()
    iou = session.get(Iou, int(text)) if text.isdigit() else \
        session.scalar(select(Iou).where(Iou.business_key == text))
    if iou is None:
        raise NotFound(f"no IOU {ref} (give its id or its ticket, like IOU-2026-000001)")
    return iou


def installment_of(session: Session, iou_id: Any, number: Any, lock: bool = False) -> IouInstallment:
    """Installment ``number`` of an IOU; ``lock`` holds its row until commit (on PostgreSQL), so two
    payments booked at once add up instead of the second overwriting the first."""
    iou = find(session, iou_id)
    try:
        wanted = int(number)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"installment number '{number}' is not a whole number", field="installment") from exc
    for item in iou.installments:
        if item.number == wanted:
            if lock:
                item = session.get(IouInstallment, item.id, with_for_update=True, populate_existing=True)
            return item
    raise NotFound(f"{iou.business_key or f'IOU {iou.id}'} has no installment {wanted} "
                   f"(it has {len(iou.installments)})")


def list_ious(session: Session, status: str | None = None) -> list[Iou]:
    query = select(Iou).order_by(Iou.id)
    if status:
        query = query.where(Iou.status == status)
    return list(session.scalars(query))


def summary(iou: Iou) -> dict[str, Any]:
    paid = sum((i.paid for i in iou.installments), Decimal("0.00"))
    written_off = sum((i.written_off for i in iou.installments), Decimal("0.00"))
    return {"id": iou.id, "business_key": iou.business_key, "customer_id": iou.customer_id,
            "amount": iou.amount, "currency": iou.currency, "paid": paid, "written_off": written_off,
            "remaining": iou.amount - paid - written_off, "status": iou.status,
            "responsible_agent": iou.responsible_agent, "installments": len(iou.installments),
            "created_at": iou.created_at, "closed_at": iou.closed_at}


def detail(iou: Iou) -> dict[str, Any]:
    return {**summary(iou), "description": iou.description, "phone": iou.phone, "email": iou.email,
            "language": iou.language, "instance_id": iou.instance_id,
            "installments": [{"number": i.number, "due_date": i.due_date, "amount": i.amount, "paid": i.paid,
                              "written_off": i.written_off, "remaining": i.remaining, "status": i.status,
                              "dunning_level": i.dunning_level, "review_at": i.review_at,
                              "payments": [{"id": p.id, "amount": p.amount, "method": p.method,
                                            "reference": p.reference, "recorded_by": p.recorded_by,
                                            "recorded_at": p.recorded_at} for p in i.payments]}
                             for i in iou.installments]}


# --- operations -----------------------------------------------------------------------------


@operation("iou.create")
def create(customer_id: int, amount: Any, responsible_agent: str, due_date: Any = None, currency: str = "CNY",
           installments: list | None = None, description: str | None = "", phone: str | None = None,
           email: str | None = None, at: Any = None, *, _session: Session, _instance_id: int) -> dict[str, Any]:
    """Write an IOU and its installments (one when none are given) for the ticket that calls it.

    An IOU written after some of its levels fell due (an old debt entered late) does not send them
    all at once: the SMS and e-mail levels already past at ``at`` are passed over, up to the first
    call, review or approval that is due, which comes at once.
    """
    if isinstance(customer_id, str) and customer_id.strip().isdigit():
        customer_id = int(customer_id)
    customer = _session.get(Customer, customer_id) if isinstance(customer_id, int) else None
    if customer is None:
        raise InvalidInput(f"customer {customer_id} does not exist", field="customer_id")
    total = money(amount)
    plan = _installment_plan(total, due_date, installments)
    agent = _session.scalar(select(User).where(User.username == str(responsible_agent or "")))
    if agent is None or not agent.is_active:
        raise InvalidInput(f"responsible_agent '{responsible_agent}' is not an active user", field="responsible_agent")
    number = normalize_phone(phone) if phone else (customer.phones[0].number if customer.phones else "")
    if not number:
        raise InvalidInput(f"customer {customer.id} has no phone number on file: give 'phone' for the dunning SMS",
                           field="phone")
    if email and not _EMAIL.match(str(email)):
        raise InvalidInput(f"email '{email}' is not an e-mail address like name@example.com", field="email")
    ticket = _session.get(ProcessInstance, _instance_id)
    iou = Iou(customer_id=customer.id, instance_id=_instance_id, business_key=ticket.business_key if ticket else None,
              amount=total, currency=_currency(currency), description=str(description or "")[:4000],
              responsible_agent=agent.username, phone=number, email=str(email) if email else None,
              language=customer.language, created_by=(ticket.started_by if ticket else "system"))
    iou.installments = [IouInstallment(number=n, due_date=d, amount=a, paid=Decimal("0.00"),
                                       written_off=Decimal("0.00")) for n, (d, a) in enumerate(plan, 1)]
    _session.add(iou)
    _session.flush()
    when = _when(at)
    ladder = dunning.levels(_session)
    for item in iou.installments:
        for level in ladder:
            if level.action in STAFF_ACTIONS or dunning.due_moment(item.due_date, level.days) > when:
                break
            item.dunning_level, item.dunning_days = level.level, level.days
    return {"iou_id": iou.id, "business_key": iou.business_key, "customer_id": customer.id,
            "customer_name": customer.name, "amount": iou.amount, "currency": iou.currency,
            "responsible_agent": iou.responsible_agent, "phone": iou.phone, "email": iou.email,
            "language": iou.language,
            "installments": [{"number": i.number, "due_date": i.due_date.isoformat(), "amount": i.amount}
                             for i in iou.installments]}


@operation("iou.next_dunning_step")
def next_dunning_step(iou_id: int, installment_no: int, at: Any = None, *,
                      _session: Session) -> dict[str, Any] | None:
    """The installment's next dunning level and its due time (ISO, UTC); None once it is settled."""
    item = installment_of(_session, iou_id, installment_no)
    found = dunning.next_level(_session, item, _when(at))
    if found is None:
        return None
    level, due_at = found
    iou = item.iou
    values = {"amount": item.remaining, "currency": iou.currency, "due_date": item.due_date.isoformat(),
              "business_key": iou.business_key or f"IOU {iou.id}", "installment": item.number,
              "customer_name": _session.get(Customer, iou.customer_id).name,
              "days_overdue": max(0, (due_at.date() - item.due_date).days)}
    return {"level": level.level, "days": level.days, "action": level.action, "due_at": due_at.isoformat(),
            "installment_no": item.number, "remaining": item.remaining, "currency": iou.currency,
            "phone": iou.phone, "email": iou.email,
            "text": {"en": dunning.render(level.message_en, values), "zh": dunning.render(level.message_zh, values)},
            "subject": {lang: dunning.render(t, values) for lang, t in _SUBJECT.items()}}


@operation("iou.take_dunning_step")
def take_dunning_step(iou_id: int, installment_no: int, at: Any = None, *,
                      _session: Session) -> dict[str, Any] | None:
    """The level due now, read afresh; None when none is due (settled, or the table changed).

    An SMS or e-mail level is noted as reached at once. A level that gives staff a task (a call,
    a review, a write-off approval) is noted only when its task is done (``iou.finish_dunning_step``):
    a payment that interrupts the task leaves the level due, so what is still owed gets the task again.
    """
    step = next_dunning_step(iou_id, installment_no, at, _session=_session)
    if step is None or datetime.fromisoformat(step["due_at"]) > _when(at):
        return None
    if step["action"] not in STAFF_ACTIONS:
        item = installment_of(_session, iou_id, installment_no)
        item.dunning_level, item.dunning_days, item.review_at = step["level"], step["days"], None
    return step


@operation("iou.finish_dunning_step")
def finish_dunning_step(iou_id: int, installment_no: int, level: int, days: int, at: Any = None, *,
                        _session: Session) -> dict[str, Any]:
    """Note a staff level (call, review, write-off approval) as done once its task is completed.

    The levels that fell due while the task was open are passed over when they are SMS, e-mail or
    call levels: the task just done stands in for them, so a call answered late is not followed at
    once by a catch-up SMS and a second call for the same installment. A supervisor review or a
    write-off approval that fell due meanwhile is never passed over: it comes next, at once.
    """
    item = installment_of(_session, iou_id, installment_no, lock=True)
    level, days = int(level), int(days)
    if item.dunning_days is None or days >= item.dunning_days:
        item.dunning_level, item.dunning_days = level, days
    passed: list[int] = []
    if item.status == "open":
        when = _when(at)
        for later in dunning.levels(_session):
            if later.days <= item.dunning_days:
                continue
            if later.action not in PASSABLE_ACTIONS or dunning.due_moment(item.due_date, later.days) > when:
                break
            item.dunning_level, item.dunning_days = later.level, later.days
            passed.append(later.level)
    return {"level": item.dunning_level, "passed_over": passed, "status": item.status, "remaining": item.remaining}


@operation("iou.record_payment")
def record_payment(iou_id: int, installment_no: int, amount: Any, method: str | None = "cash",
                   reference: str | None = "", recorded_by: str | None = "system", at: Any = None, *,
                   _session: Session) -> dict[str, Any]:
    """Book a payment on one installment (partial or the rest); more than is owed is refused."""
    item = installment_of(_session, iou_id, installment_no, lock=True)
    iou = item.iou
    name = f"installment {item.number} of {iou.business_key or f'IOU {iou.id}'}"
    reference = str(reference or "").strip()[:100]
    paid = money(amount)
    earlier = next((p for p in item.payments if reference and p.reference == reference), None)
    if earlier is not None:  # the same notice delivered again (a retried bank message): booked once
        if earlier.amount != paid:
            raise InvalidInput(f"reference '{reference}' was already booked on {name} for {earlier.amount} "
                               f"{iou.currency}, not {paid}", field="reference")
        return _payment_result(earlier, item, duplicate=True)
    if iou.status != "open" or item.status != "open":
        raise IllegalState(f"{name} is already {item.status.replace('_', ' ')}: no payment can be recorded on it")
    if paid > item.remaining:
        raise InvalidInput(f"a payment of {paid} {iou.currency} is more than the {item.remaining} {iou.currency} "
                           f"still owed on {name}", field="amount")
    method = method or "cash"
    if method not in PAYMENT_METHODS:
        raise InvalidInput(f"method '{method}' is not one of: {', '.join(PAYMENT_METHODS)}", field="method")
    when = _when(at)
    payment = IouPayment(amount=paid, method=method, reference=reference,
                         recorded_by=str(recorded_by or "system")[:100], recorded_at=when)
    item.payments.append(payment)
    item.paid += paid
    if item.remaining == 0:
        item.status, item.settled_at = "paid", when
    _session.flush()
    return _payment_result(payment, item, duplicate=False)


def _payment_result(payment: IouPayment, item: IouInstallment, duplicate: bool) -> dict[str, Any]:
    return {"payment_id": payment.id, "iou_id": item.iou_id, "installment_no": item.number,
            "amount": payment.amount, "paid": item.paid, "remaining": item.remaining, "currency": item.iou.currency,
            "settled": item.status != "open", "duplicate": duplicate}


@operation("iou.decide_write_off")
def decide_write_off(iou_id: int, installment_no: int, approved: bool, reason: str | None = "",
                     review_in_days: int | None = None, at: Any = None, *, _session: Session) -> dict[str, Any]:
    """Write off what is still owed on the installment, or keep collecting and ask again in some days."""
    item = installment_of(_session, iou_id, installment_no, lock=True)
    if item.status != "open":  # paid (from the command line) while the approval was open: nothing left to decide
        return {"approved": False, "written_off": Decimal("0.00"), "review_at": None, "settled_meanwhile": True}
    when = _when(at)
    if approved:
        if not (reason or "").strip():
            raise InvalidInput("a write-off needs a reason", field="reason")
        amount = item.remaining
        item.written_off += amount
        item.status, item.settled_at = "written_off", when
        return {"approved": True, "written_off": amount, "review_at": None, "settled_meanwhile": False}
    try:
        days = int(review_in_days)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("a rejected write-off needs review_in_days: when to ask again",
                           field="review_in_days") from exc
    if days < 1:
        raise InvalidInput(f"review_in_days must be 1 or more, got {days}", field="review_in_days")
    item.review_at = when + timedelta(days=days)
    return {"approved": False, "written_off": Decimal("0.00"), "review_at": item.review_at.isoformat(),
            "settled_meanwhile": False}


@operation("iou.close")
def close(iou_id: int, at: Any = None, *, _session: Session) -> dict[str, Any]:
    """Close the IOU once every installment is settled: paid, written_off or partially_written_off."""
    iou = find(_session, iou_id)
    open_ones = [i.number for i in iou.installments if i.status == "open"]
    if open_ones:
        raise IllegalState(f"IOU {iou.business_key or iou.id} still has open installments: "
                           f"{', '.join(map(str, open_ones))}")
    paid = sum((i.paid for i in iou.installments), Decimal("0.00"))
    written_off = sum((i.written_off for i in iou.installments), Decimal("0.00"))
    if iou.status == "open":
        iou.status = "paid" if written_off == 0 else "written_off" if paid == 0 else "partially_written_off"
        iou.closed_at = _when(at)
    return {"status": iou.status, "paid": paid, "written_off": written_off, "currency": iou.currency}
