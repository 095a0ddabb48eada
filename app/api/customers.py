"""Customers over JSON: who owns a phone number, and one customer's history (the agent's screen, screen pops).

``GET /api/v1/customers?phone=NUMBER`` the customer with this number (any spelling), as
``customers find --json``; ``GET /api/v1/customers/<id>?limit=N`` their profile, open tickets and
recent tickets and calls, as ``customers show --json``. Both read ``app.services.customer_history``.

Customer data is personal: every request here must come from an active staff user, who logs in
with HTTP Basic (``Authorization: Basic base64(username:password)``, the password the
``users`` commands set). No or wrong credentials: 401; a disabled user: 403. A query
parameter that is not what it should be (a phone that is no phone number, a bad ``limit``): 422
``invalid_input`` naming the parameter, as everywhere in the API.
"""
from __future__ import annotations

from functools import cache

from flask import Blueprint, g, jsonify, request
from werkzeug.security import check_password_hash, generate_password_hash

from app import hotline
from app.errors import Forbidden
from app.schemas.customers import (
    CustomerHistoryQuerySchema,
    CustomerHistorySchema,
    CustomerLookupQuerySchema,
    CustomerSchema,
)
from app.schemas.requests import load
from app.services import customer_history, identity

bp = Blueprint("api_customers", __name__, url_prefix="/api/v1")

_CHALLENGE = 'Basic realm="Hotline", charset="UTF-8"'


@bp.before_request
def _staff_only():
    """Let only an active staff user through; ``g.user`` is their username."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username or auth.password is None:
        return _unauthenticated("log in first: send Authorization: Basic with your Hotline username and password")
    with hotline().db.transaction() as s:
        user = identity.find_user(s, auth.username)
        if user is None:
            check_password_hash(_unused_hash(), auth.password)  # as slow as a real check: names stay secret
            return _unauthenticated("wrong username or password")
        if not identity.check_password(user, auth.password):
            return _unauthenticated("wrong username or password")
        if not user.is_active:
            raise Forbidden(f"user '{user.username}' is disabled")
        g.user = user.username
    return None


@bp.get("/customers")
def find():
    """``?phone=`` any spelling of the number; 404 naming the normalized number when nobody has it."""
    query = _query(CustomerLookupQuerySchema())
    with hotline().db.transaction() as s:
        customer = customer_history.find(s, query["phone"])
        profile = customer_history.profile(s, customer)
    return jsonify(CustomerSchema().dump(profile))


@bp.get("/customers/<customer_id>")
def show(customer_id: str):
    """``?limit=N`` (1-500, default 20) recent tickets and calls, newest first; the counts are never cut."""
    query = _query(CustomerHistoryQuerySchema())
    with hotline().db.transaction() as s:
        history = customer_history.history(s, customer_id, **query)
    return jsonify(CustomerHistorySchema().dump(history))


def _query(schema) -> dict:
    return load(schema, request.args.to_dict())


def _unauthenticated(message: str):
    response = jsonify(error="unauthenticated", message=message)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = _CHALLENGE
    return response


@cache
def _unused_hash() -> str:
    return generate_password_hash("no user has this password")
