"""/healthz: is the database reachable, is Redis reachable. For load balancers and people."""
from __future__ import annotations

from flask import Blueprint, jsonify

from app import hotline, migrate

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    h = hotline()
    checks = {}
    try:
        current, head = migrate.current_revision(h.db), migrate.head_revision()
        if current == head:
            checks["database"] = "ok"
        else:
            checks["database"] = (f"error: schema at {current or 'nothing'}, this Hotline needs {head}; "
                                  "run: flask --app wsgi db upgrade")
    except Exception as exc:  # report, never crash the health check
        checks["database"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    try:
        h.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    healthy = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if healthy else "degraded", checks=checks), 200 if healthy else 503
