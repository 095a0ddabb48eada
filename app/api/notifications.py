"""In-app notifications over JSON: a user's inbox and marking one read (the web inbox comes later)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from app import hotline
from app.schemas.notifications import InboxQuerySchema, InboxSchema, MarkReadSchema, NotificationSchema
from app.schemas.requests import load
from app.services import notify

bp = Blueprint("api_notifications", __name__, url_prefix="/api/v1")


@bp.get("/users/<username>/notifications")
def inbox(username: str):
    """``?unread=1`` for the unread ones only; unread first, newest first either way."""
    query = load(InboxQuerySchema(), request.args.to_dict())
    with hotline().db.transaction() as s:
        result = notify.inbox(s, username, unread_only=query["unread"], limit=query["limit"])
    return jsonify(InboxSchema().dump(result))


@bp.post("/notifications/<int:notification_id>/read")
def mark_read(notification_id: int):
    """Body ``{"user": "li.na"}``: only the user the notification was sent to may mark it read."""
    body = load(MarkReadSchema(), request.get_json(silent=True))
    with hotline().db.transaction() as s:
        row = notify.mark_read(s, notification_id, body["user"])
    return jsonify(NotificationSchema().dump(row))
