"""Refunds: the operations the refund diagram calls, and the report behind `flask refunds list`.

``refund.request`` records what the agent took down (one open refund per order),
``refund.decide`` records one approval level's decision and moves the refund along its
chain, ``refund.record_payout`` records what finance paid. Each runs in the engine's
transaction (``_session``) and knows its ticket (``_instance_id``): who decided or paid is
whoever completed the named user task of that ticket, read from ``human_task``, so a
diagram cannot claim someone else did it.

Money is ``Decimal`` from the form to the database: never a float, at most two decimal
places, more than zero. An amount with more places is refused, not rounded.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import IllegalState, InvalidInput, NotFound
from app.models import Customer, HumanTask, ProcessInstance, TaskStatus, utcnow
from app.models.customer import LANGUAGES
from app.models.refund import APPROVAL_LEVELS, DECISIONS, Refund, RefundApproval, RefundStatus

from .customers import normalize_phone
from .registry import operation

ORDER_REFERENCE = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,38}[A-Z0-9]$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
DEFAULT_CURRENCY = "CNY"
MAX_AMOUNT = Decimal("9999999999.99")  # Numeric(12, 2)
CENT = Decimal("0.01")
NO_ACCOUNT_NEEDED = ("original_payment",)  # back to the card or wallet the customer paid with


def parse_money(value: Any, field: str) -> Decimal:
    """``value`` as a Decimal of at most two places and more than zero, or InvalidInput naming ``field``."""
    if isinstance(value, bool) or value is None or value == "":
        raise InvalidInput(f"{field}: an amount is needed", field=field)
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidInput(f"{field}: '{value}' is not an amount of money", field=field) from None
    if not amount.is_finite():
        raise InvalidInput(f"{field}: '{value}' is not an amount of money", field=field)
    if amount <= 0:
        raise InvalidInput(f"{field}: must be more than 0 (got {value})", field=field)
    if amount.as_tuple().exponent < -2 and amount != amount.quantize(CENT):
        raise InvalidInput(f"{field}: {value} has more than 2 decimal places", field=field)
    if amount > MAX_AMOUNT:
        raise InvalidInput(f"{field}: {value} is more than {MAX_AMOUNT}", field=field)
    return amount.quantize(CENT)


def parse_order_reference(value: Any) -> str:
    text = str(value or "").strip().upper()
    if not ORDER_REFERENCE.match(text):
        raise InvalidInput(f"order_reference: '{value or ''}' is not an order reference: use 4 to 40 letters, "
                           "digits and dashes, starting and ending with a letter or digit (e.g. ORD-2026-0042)",
                           field="order_reference")
    return text


def parse_currency(value: Any) -> str:
    text = str(value or DEFAULT_CURRENCY).strip().upper()
    if not CURRENCY.match(text):
        raise InvalidInput(f"currency: '{value}' is not a currency code (three letters, e.g. CNY)", field="currency")
    return text


def parse_chain(value: Any) -> list[str]:
    """The approval chain from the DMN: the first 1, 2 or 3 of lead, finance, manager, in that order."""
    chain = list(value) if isinstance(value, (list, tuple)) else []
    if not chain or chain != list(APPROVAL_LEVELS[:len(chain)]):
        raise InvalidInput(f"approval_chain: {value!r} is not a chain of approval levels; it must be "
                           f"{list(APPROVAL_LEVELS[:1])}, {list(APPROVAL_LEVELS[:2])} or {list(APPROVAL_LEVELS)}",
                           field="approval_chain")
    return chain


def _text(value: Any, field: str, limit: int, required: bool = False) -> str:
    text = str(value or "").strip()
    if required and not text:
        raise InvalidInput(f"{field}: this is needed", field=field)
    if len(text) > limit:
        raise InvalidInput(f"{field}: at most {limit} characters (got {len(text)})", field=field)
    return text


def _done_by(session: Session, instance_id: int, task: str | None) -> str:
    """Who completed the ticket's user task ``task`` last ("system" when no person did)."""
    if not task:
        return "system"
    who = session.scalar(select(HumanTask.completed_by)
                         .where(HumanTask.instance_id == instance_id, HumanTask.element_id == task,
                                HumanTask.status == TaskStatus.COMPLETED)
                         .order_by(HumanTask.completed_at.desc(), HumanTask.id.desc()).limit(1))
    return who or "system"


def open_refund_for(session: Session, order_reference: str) -> Refund | None:
    return session.scalar(select(Refund).where(Refund.order_reference == order_reference,
                                               Refund.status.in_(RefundStatus.OPEN)))


def _duplicate(existing: Refund) -> InvalidInput:
    return InvalidInput(f"order_reference: order {existing.order_reference} already has an open refund "
                        f"{existing.business_key} ({existing.status}, {existing.amount} {existing.currency}); "
                        "finish or reject that one first", field="order_reference",
                        refund=existing.business_key)


def _load(session: Session, refund_id: Any) -> Refund:
    refund = session.get(Refund, refund_id, with_for_update=True) if isinstance(refund_id, int) else None
    if refund is None:
        raise NotFound(f"refund {refund_id!r} does not exist")
    return refund


@operation("refund.request")
def request(order_reference: str, amount: Any, reason: str, method: str, phone: str,
            currency: str | None = DEFAULT_CURRENCY, account: str | None = "", details: str | None = "",
            language: str | None = "zh", customer_id: int | None = None, source_ticket: str | None = "",
            approval_chain: list[str] | None = None, task: str | None = None, at: datetime | None = None, *,
            _session: Session, _instance_id: int) -> dict[str, Any]:
    """Record a refund request (status requested); refused when the order already has an open refund."""
    order = parse_order_reference(order_reference)
    money = parse_money(amount, "amount")
    code = parse_currency(currency)
    reason = _text(reason, "reason", 40, required=True)
    method = _text(method, "method", 40, required=True)
    account = _text(account, "account", 100)
    if method not in NO_ACCOUNT_NEEDED and not account:
        raise InvalidInput(f"account: the account to pay to is needed when the method is {method}", field="account")
    language = language or "zh"
    if language not in LANGUAGES:
        raise InvalidInput(f"language: must be one of: {', '.join(LANGUAGES)} (got {language!r})", field="language")
    number = normalize_phone(phone)
    chain = parse_chain(approval_chain)
    existing = open_refund_for(_session, order)
    if existing is not None:
        raise _duplicate(existing)
    if customer_id is not None and (not isinstance(customer_id, int) or _session.get(Customer, customer_id) is None):
        customer_id = None  # a stale id from the start data: the refund still has the phone to reach them
    ticket = _session.get(ProcessInstance, _instance_id)
    now = at or utcnow()
    refund = Refund(business_key=ticket.business_key if ticket else f"instance-{_instance_id}",
                    instance_id=_instance_id, customer_id=customer_id,
                    phone=number, language=language, source_ticket=_text(source_ticket, "source_ticket", 40),
                    order_reference=order, amount=money, currency=code, reason=reason, method=method,
                    account=account, details=_text(details, "details", 4000), approval_chain=chain,
                    status=RefundStatus.REQUESTED, requested_by=_done_by(_session, _instance_id, task),
                    requested_at=now, updated_at=now)
    try:
        # A savepoint: when another agent records the same order at this moment, the unique
        # index refuses one of them without aborting the engine's whole transaction.
        with _session.begin_nested():
            _session.add(refund)
    except IntegrityError:
        existing = open_refund_for(_session, order)
        if existing is None:
            raise
        raise _duplicate(existing) from None
    earlier = _session.scalars(select(Refund.business_key).where(
        Refund.order_reference == order, Refund.status == RefundStatus.PAID).order_by(Refund.id)).all()
    return {"refund_id": refund.id, "business_key": refund.business_key, "status": refund.status,
            "order_reference": order, "amount": money, "currency": code, "approval_chain": chain,
            "earlier_refunds": list(earlier)}


@operation("refund.decide")
def decide(refund_id: int, level: str, decision: str, reason: str | None = "", task: str | None = None,
           at: datetime | None = None, *, _session: Session, _instance_id: int) -> dict[str, Any]:
    """Record one approval level's decision; a rejection ends the chain, the last approval approves it."""
    refund = _load(_session, refund_id)
    if decision not in DECISIONS:
        raise InvalidInput(f"decision: must be one of: {', '.join(DECISIONS)} (got {decision!r})", field="decision")
    reason = _text(reason, "reason", 2000)
    if decision == "reject" and not reason:
        raise InvalidInput("reason: a rejection needs a reason (the customer is told it)", field="reason")
    if refund.status != RefundStatus.REQUESTED:
        raise IllegalState(f"refund {refund.business_key} is already {refund.status}; no more decisions are taken")
    chain = list(refund.approval_chain)
    done = [a.level for a in refund.approvals]
    expected = chain[len(done)] if len(done) < len(chain) else None
    if level != expected:
        raise IllegalState(f"refund {refund.business_key} waits for the {expected} level, not {level!r} "
                           f"(chain {', '.join(chain)})")
    now = at or utcnow()
    who = _done_by(_session, _instance_id, task)
    refund.approvals.append(RefundApproval(level=level, decision=decision, reason=reason, decided_by=who,
                                           decided_at=now))
    next_level = None
    if decision == "reject":
        refund.status, refund.decided_at = RefundStatus.REJECTED, now
    elif level == chain[-1]:
        refund.status, refund.decided_at = RefundStatus.APPROVED, now
    else:
        next_level = chain[len(done) + 1]
    refund.updated_at = now
    _session.flush()
    return {"refund_id": refund.id, "level": level, "decision": decision, "reason": reason, "decided_by": who,
            "status": refund.status, "next_level": next_level}


@operation("refund.record_payout")
def record_payout(refund_id: int, payout_reference: str, paid_amount: Any, note: str | None = "",
                  task: str | None = None, at: datetime | None = None, *,
                  _session: Session, _instance_id: int) -> dict[str, Any]:
    """Record the payout of an approved refund; a paid amount other than the approved one needs a note."""
    refund = _load(_session, refund_id)
    if refund.status != RefundStatus.APPROVED:
        raise IllegalState(f"refund {refund.business_key} is {refund.status}, not approved: it cannot be paid")
    reference = _text(payout_reference, "payout_reference", 80, required=True)
    paid = parse_money(paid_amount, "paid_amount")
    note = _text(note, "payout_note", 2000)
    if paid > refund.amount:
        raise InvalidInput(f"paid_amount: {paid} {refund.currency} is more than the approved "
                           f"{refund.amount} {refund.currency}", field="paid_amount")
    if paid != refund.amount and not note:
        raise InvalidInput(f"paid_amount: {paid} {refund.currency} differs from the approved {refund.amount} "
                           f"{refund.currency}: explain the difference in the payout note", field="paid_amount")
    now = at or utcnow()
    refund.status, refund.paid_amount, refund.payout_reference = RefundStatus.PAID, paid, reference
    refund.payout_note, refund.paid_by = note, _done_by(_session, _instance_id, task)
    refund.paid_at = refund.updated_at = now
    _session.flush()
    return {"refund_id": refund.id, "status": refund.status, "paid_amount": paid, "currency": refund.currency,
            "payout_reference": reference, "paid_by": refund.paid_by}


# --- reports ----------------------------------------------------------------------------

def describe(refund: Refund) -> dict[str, Any]:
    """A refund as reports and the CLI show it (money stays Decimal)."""
    return {
        "id": refund.id, "business_key": refund.business_key, "status": refund.status,
        "order_reference": refund.order_reference, "amount": refund.amount, "currency": refund.currency,
        "reason": refund.reason, "method": refund.method, "customer_id": refund.customer_id,
        "phone": refund.phone, "approval_chain": list(refund.approval_chain),
        "requested_by": refund.requested_by, "requested_at": refund.requested_at, "decided_at": refund.decided_at,
        "paid_amount": refund.paid_amount, "payout_reference": refund.payout_reference, "paid_at": refund.paid_at,
        "approvals": [{"level": a.level, "decision": a.decision, "reason": a.reason, "decided_by": a.decided_by,
                       "decided_at": a.decided_at} for a in refund.approvals],
    }


def report(session: Session, status: Iterable[str] | None = None, since: datetime | None = None,
           until: datetime | None = None) -> dict[str, Any]:
    """Refunds requested in [since, until) with these statuses, newest first, and totals per currency.

    Totals are per currency (amounts in different currencies are never added up): how many,
    the amount asked for, and the amount paid out.
    """
    statuses = list(status or [])
    unknown = [s for s in statuses if s not in RefundStatus.ALL]
    if unknown:
        raise InvalidInput(f"status: unknown {', '.join(unknown)}; use {', '.join(RefundStatus.ALL)}",
                           field="status")
    where = []
    if statuses:
        where.append(Refund.status.in_(statuses))
    if since is not None:
        where.append(Refund.requested_at >= since)
    if until is not None:
        where.append(Refund.requested_at < until)
    rows = session.scalars(select(Refund).where(*where)
                           .order_by(Refund.requested_at.desc(), Refund.id.desc())).all()
    totals: dict[str, dict[str, Any]] = {}
    for r in rows:  # summed here, in Decimal: SQLite would sum NUMERIC as floats
        t = totals.setdefault(r.currency, {"currency": r.currency, "count": 0, "amount": Decimal("0.00"),
                                           "paid_amount": Decimal("0.00")})
        t["count"] += 1
        t["amount"] += r.amount
        t["paid_amount"] += r.paid_amount or 0
    return {"refunds": [describe(r) for r in rows], "totals": [totals[c] for c in sorted(totals)]}

