"""API shapes of customers: who they are, their numbers, tickets and calls (``customer_history``'s dicts).

Times are ISO 8601 with their offset (UTC, as stored); the agent's screen shows them in its own zone.
"""
from __future__ import annotations

from marshmallow import Schema, fields, validate


class PhoneSchema(Schema):
    number = fields.String()  # E.164: +8613800138000
    label = fields.String()  # mobile, office... or ""


class CustomerSchema(Schema):
    """``customer_history.profile``: the customer, their numbers and how many tickets and calls they have."""

    id = fields.Integer()
    name = fields.String()
    language = fields.String()
    notes = fields.String()
    created_at = fields.AwareDateTime()
    phones = fields.List(fields.Nested(PhoneSchema))
    tickets = fields.Integer()
    open_tickets = fields.Integer()
    calls = fields.Integer()


class TicketSchema(Schema):
    """One row of ``customer_history.tickets``: a process instance linked to the customer."""

    id = fields.Integer()
    business_key = fields.String(allow_none=True)
    title = fields.String()
    status = fields.String()
    process = fields.String()
    process_title = fields.String()
    started_at = fields.AwareDateTime()
    ended_at = fields.AwareDateTime(allow_none=True)


class CallSchema(Schema):
    """``calls.as_dict``: one call, with the ticket it opened when any."""

    id = fields.Integer()
    linkedid = fields.String()
    direction = fields.String()
    status = fields.String()
    caller = fields.String()
    caller_number = fields.String(allow_none=True)
    called = fields.String()
    customer_id = fields.Integer(allow_none=True)
    queue = fields.String(allow_none=True)
    agent = fields.String(allow_none=True)
    started_at = fields.AwareDateTime()
    answered_at = fields.AwareDateTime(allow_none=True)
    ended_at = fields.AwareDateTime(allow_none=True)
    wait_seconds = fields.Integer(allow_none=True)
    talk_seconds = fields.Integer(allow_none=True)
    instance_id = fields.Integer(allow_none=True)
    business_key = fields.String(allow_none=True)


class CustomerHistorySchema(Schema):
    """``customer_history.history``: the profile, open tickets, recent tickets and calls, newest first."""

    customer = fields.Nested(CustomerSchema)
    open_tickets = fields.List(fields.Nested(TicketSchema))
    tickets = fields.List(fields.Nested(TicketSchema))
    calls = fields.List(fields.Nested(CallSchema))


class CustomerLookupQuerySchema(Schema):
    """``?phone=``: any spelling of the number (138 0013 8000, +86-138-0013-8000...)."""

    phone = fields.String(required=True)


class CustomerHistoryQuerySchema(Schema):
    """``?limit=``: how many recent tickets and calls; absent, the service's default (20)."""

    limit = fields.Integer(validate=validate.Range(min=1, max=500))
