"""Customers: who is calling. The operations the call-intake diagram calls, and the queries behind them.

Phone numbers are normalized in one place (``normalize_phone``) before they are stored or
looked up, so "138 0013 8000", "+86-138-0013-8000" and "008613800138000" are one number.
"""
from __future__ import annotations

import os
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Customer, CustomerPhone, InstanceStatus, ProcessInstance, utcnow
from app.models.customer import LANGUAGES

from .registry import operation

COUNTRY_CODE_ENV = "HOTLINE_PHONE_COUNTRY_CODE"
DEFAULT_COUNTRY_CODE = "86"  # mainland China: the first users' hotlines
_SEPARATORS = re.compile(r"[\s\-.()/]")
_SHAPE = re.compile(r"^(\+|00)?[0-9]+$")
OPEN_TICKETS_SHOWN = 20


def default_country_code() -> str:
    """The country code of numbers dialled without one (``HOTLINE_PHONE_COUNTRY_CODE``, default 86)."""
    code = os.environ.get(COUNTRY_CODE_ENV, DEFAULT_COUNTRY_CODE).strip().lstrip("+")
    if not code.isdigit() or not 1 <= len(code) <= 3:
        raise ValueError(f"{COUNTRY_CODE_ENV}={code!r} is not a country calling code (1 to 3 digits, e.g. 86)")
    return code


def normalize_phone(raw: Any, country_code: str | None = None) -> str:
    """The number in E.164 form (``+8613800138000``), or InvalidInput naming what is wrong.

    Spaces, dashes, dots, slashes and brackets are dropped. ``+`` or ``00`` starts an
    international number; any other number is national: one leading trunk ``0`` is
    dropped (``010 6552 9988`` is Beijing) and the default country code put in front.
    """
    text = _SEPARATORS.sub("", str(raw or ""))
    if not text:
        raise InvalidInput("a phone number is needed", field="phone")
    if not _SHAPE.match(text):
        raise InvalidInput(f"'{raw}' is not a valid phone number: only digits, spaces, dashes, brackets "
                           "and a leading + may be used", field="phone")
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    else:
        national = text[1:] if text.startswith("0") else text
        digits = (country_code or default_country_code()) + national
    if not 8 <= len(digits) <= 15 or digits.startswith("0"):
        raise InvalidInput(f"'{raw}' is not a valid phone number: too short or too long", field="phone")
    return "+" + digits


def find_by_phone(session: Session, number: str) -> Customer | None:
    """The customer with this normalized number."""
    return session.scalar(select(Customer).join(CustomerPhone).where(CustomerPhone.number == number))


def tickets(session: Session, customer_id: int, open_only: bool = False, limit: int | None = None
            ) -> list[ProcessInstance]:
    """The customer's tickets, newest first (process instances linked by ``customer_id``)."""
    query = select(ProcessInstance).where(ProcessInstance.customer_id == customer_id)
    if open_only:
        query = query.where(ProcessInstance.status.not_in(InstanceStatus.ENDED))
    query = query.order_by(ProcessInstance.started_at.desc(), ProcessInstance.id.desc()).limit(limit)
    return list(session.scalars(query))


@operation("customer.lookup_by_phone")
def lookup_by_phone(phone: str | None, *, _session: Session) -> dict[str, Any]:
    """Who is calling: the customer with this number and their open tickets (found is false when unknown)."""
    try:
        number = normalize_phone(phone)
    except InvalidInput:  # withheld ("anonymous"), an internal extension: nobody to look up
        number = None
    customer = find_by_phone(_session, number) if number else None
    if customer is None:
        return {"found": False, "phone": number, "customer_id": None, "name": None, "language": None,
                "open_tickets": []}
    open_keys = [t.business_key for t in tickets(_session, customer.id, open_only=True, limit=OPEN_TICKETS_SHOWN)]
    return {"found": True, "phone": number, "customer_id": customer.id, "name": customer.name,
            "language": customer.language, "open_tickets": open_keys}


@operation("customer.register")
def register(phone: str, name: str | None = "", language: str | None = "zh", label: str | None = "", *,
             _session: Session) -> dict[str, Any]:
    """Register a caller under this number; a number already registered returns its customer (created false)."""
    number = normalize_phone(phone)
    language = language or "zh"
    if language not in LANGUAGES:
        raise InvalidInput(f"language must be one of: {', '.join(LANGUAGES)} (got {language!r})", field="language")
    name = (name or "").strip()[:200]
    existing = find_by_phone(_session, number)
    if existing is not None:
        return _known(existing, name)
    customer = Customer(name=name, language=language)
    customer.phones.append(CustomerPhone(number=number, label=(label or "")[:40]))
    try:
        # A savepoint: two agents registering the same new number at once (PostgreSQL)
        # must not abort the engine's whole transaction; the second one finds the first.
        with _session.begin_nested():
            _session.add(customer)
    except IntegrityError:
        existing = find_by_phone(_session, number)
        if existing is None:
            raise
        return _known(existing, name)
    return {"customer_id": customer.id, "created": True}


def _known(customer: Customer, name: str) -> dict[str, Any]:
    if name and not customer.name:  # an unknown caller who now gives a name
        customer.name, customer.updated_at = name, utcnow()
    return {"customer_id": customer.id, "created": False}
