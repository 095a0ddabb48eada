"""The deployed process library, read-only (until the designer pages exist)."""
from __future__ import annotations

from flask import Blueprint, render_template

from app import hotline
from app.engine import queries

bp = Blueprint("processes", __name__)


@bp.get("/")
@bp.get("/processes")
def index():
    with hotline().db.transaction() as s:
        rows = queries.processes(s)
    return render_template("processes.html", processes=rows)
