"""Hotline: a BPMN-first work-order system for call centers."""
from __future__ import annotations

from flask import Flask

from app.config import Settings
from app.container import Hotline


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app: wire parts together and nothing else (no I/O here)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(SECRET_KEY=settings.secret_key, JSON_SORT_KEYS=False)
    app.extensions["hotline"] = Hotline(settings)

    from app.api import init_app as init_api
    from app.web import init_app as init_web

    init_web(app)
    init_api(app)

    from app.cli import register_cli

    register_cli(app)
    return app


def hotline(app: Flask | None = None) -> Hotline:
    from flask import current_app

    return (app or current_app).extensions["hotline"]
