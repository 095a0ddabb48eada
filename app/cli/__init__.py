"""The `flask --app wsgi ...` commands."""
from __future__ import annotations

from flask import Flask

from .admin import db, users
from .bpmn import bpmn
from .calendars import calendars
from .events import incidents, messages, timers
from .instances import instances
from .tasks import tasks


def register_cli(app: Flask) -> None:
    for group in (db, users, bpmn, instances, tasks, messages, timers, incidents, calendars):
        app.cli.add_command(group)
