"""/healthz: is the database reachable, is Redis reachable. For load balancers and people."""
from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from app import hotline

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    h = hotline()
    checks = {}
    try:
        with h.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, never crash the health check
        checks["database"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    try:
        h.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    healthy = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if healthy else "degraded", checks=checks), 200 if healthy else 503
