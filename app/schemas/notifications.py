"""API shapes of notifications: what a user's inbox returns and what marking one read takes."""
from __future__ import annotations

from marshmallow import Schema, fields, validate


class NotificationSchema(Schema):
    id = fields.Integer()
    channel = fields.String()
    recipient = fields.String()
    subject = fields.String()
    text = fields.String()
    link = fields.String(allow_none=True)
    instance_id = fields.Integer(allow_none=True)
    status = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.AwareDateTime(allow_none=True)
    sent_at = fields.AwareDateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    username = fields.String(allow_none=True)
    read_at = fields.AwareDateTime(allow_none=True)


class InboxSchema(Schema):
    user = fields.String()
    unread = fields.Integer()
    notifications = fields.List(fields.Nested(NotificationSchema))


class InboxQuerySchema(Schema):
    unread = fields.Boolean(load_default=False)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class MarkReadSchema(Schema):
    user = fields.String(required=True, validate=validate.Length(min=1, max=80))
