"""The deployed process library, read-only (until the designer pages exist)."""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template

from app import hotline
from app.engine import queries

bp = Blueprint("processes", __name__)


@bp.get("/")
@bp.get("/processes")
def index():
    with hotline().db.transaction() as s:
        rows = queries.processes(s)
    return render_template("processes.html", processes=rows)


@bp.get("/api/v1/processes")
def api_list():
    with hotline().db.transaction() as s:
        return jsonify(processes=queries.processes(s))
