"""HTML pages and their error handling."""
from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import SQLAlchemyError

from app.db import explain
from app.errors import HotlineError

from .health import bp as health_bp
from .processes import bp as processes_bp


def init_app(app: Flask) -> None:
    app.register_blueprint(health_bp)
    app.register_blueprint(processes_bp)

    @app.errorhandler(HotlineError)
    def _hotline_error(exc: HotlineError):
        if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
            return jsonify(exc.to_dict()), exc.status
        return render_template("error.html", error=exc), exc.status

    @app.errorhandler(SQLAlchemyError)
    def _database_error(exc: SQLAlchemyError):
        problem = explain(exc)
        if problem is None:
            raise exc
        return _hotline_error(problem)
