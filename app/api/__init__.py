"""JSON API under /api/v1: every action a page offers has a twin here."""
from __future__ import annotations

from flask import Blueprint, Flask, jsonify

from app import hotline
from app.engine import queries

from . import customers, notifications

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/processes")
def processes():
    with hotline().db.transaction() as s:
        return jsonify(processes=queries.processes(s))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(notifications.bp)
    app.register_blueprint(customers.bp)
