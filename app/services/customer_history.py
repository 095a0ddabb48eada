"""A customer's history: who they are, their numbers, their tickets and their calls, newest first.

What an agent reads before calling back, and what ``flask --app wsgi customers show`` prints.
Tickets are the process instances linked by ``customer_id``; calls are the ``call`` rows
linked by the caller's (inbound) or called (outbound) normalized number.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import Call, Customer, InstanceStatus, ProcessInstance, ProcessModel, ProcessVersion

from . import calls
from .customers import find_by_phone, normalize_phone

RECENT = 20


def get(session: Session, customer_id: Any) -> Customer:
    """The customer with this id, or NotFound / InvalidInput saying what is wrong."""
    text = str(customer_id).strip()
    if not text.isdigit():
        raise InvalidInput(f"'{customer_id}' is not a customer id (a number like 12)", field="customer_id")
    customer = session.get(Customer, int(text))
    if customer is None:
        raise NotFound(f"customer {text} does not exist", customer_id=int(text))
    return customer


def find(session: Session, phone: str) -> Customer:
    """The customer with this number (any spelling of it), or NotFound naming the normalized number."""
    number = normalize_phone(phone)
    customer = find_by_phone(session, number)
    if customer is None:
        raise NotFound(f"no customer has the number {number}", phone=number)
    return customer


def profile(session: Session, customer: Customer) -> dict[str, Any]:
    """Who the customer is: name, language, notes, numbers, and how many tickets and calls they have."""
    open_count = session.scalar(select(func.count()).select_from(ProcessInstance).where(
        ProcessInstance.customer_id == customer.id, ProcessInstance.status.not_in(InstanceStatus.ENDED)))
    ticket_count = session.scalar(select(func.count()).select_from(ProcessInstance).where(
        ProcessInstance.customer_id == customer.id))
    call_count = session.scalar(select(func.count()).select_from(Call).where(Call.customer_id == customer.id))
    return {"id": customer.id, "name": customer.name, "language": customer.language, "notes": customer.notes,
            "created_at": customer.created_at,
            "phones": [{"number": p.number, "label": p.label} for p in customer.phones],
            "tickets": ticket_count, "open_tickets": open_count, "calls": call_count}


def tickets(session: Session, customer_id: int, open_only: bool = False, limit: int | None = RECENT
            ) -> list[dict[str, Any]]:
    """The customer's tickets, newest first: business key, process, title, status, started / ended."""
    query = (select(ProcessInstance.id, ProcessInstance.business_key, ProcessInstance.title,
                    ProcessInstance.status, ProcessInstance.started_at, ProcessInstance.ended_at,
                    ProcessModel.key.label("process"), ProcessModel.title.label("process_title"))
             .join(ProcessVersion, ProcessVersion.id == ProcessInstance.version_id)
             .join(ProcessModel, ProcessModel.id == ProcessVersion.model_id)
             .where(ProcessInstance.customer_id == customer_id))
    if open_only:
        query = query.where(ProcessInstance.status.not_in(InstanceStatus.ENDED))
    query = query.order_by(ProcessInstance.started_at.desc(), ProcessInstance.id.desc()).limit(limit)
    return [dict(row._mapping) for row in session.execute(query)]


def history(session: Session, customer_id: Any, limit: int = RECENT) -> dict[str, Any]:
    """One customer's profile, open tickets, and their most recent tickets and calls (newest first)."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 500:
        raise InvalidInput(f"limit must be a number from 1 to 500 (got {limit!r})", field="limit")
    customer = get(session, customer_id)
    return {"customer": profile(session, customer),
            "open_tickets": tickets(session, customer.id, open_only=True, limit=limit),
            "tickets": tickets(session, customer.id, limit=limit),
            "calls": [calls.as_dict(c) for c in calls.calls_of(session, customer.id, limit=limit)]}
