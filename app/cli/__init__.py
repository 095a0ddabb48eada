"""The `flask --app wsgi ...` commands."""
from __future__ import annotations

from flask import Flask

from .admin import db, users
from .bpmn import bpmn
from .calendars import calendars
from .customers import customers
from .events import incidents, messages, timers
from .instances import instances
from .ious import dunning_cli, ious
from .notifications import notifications
from .refunds import refunds
from .schedules import schedules
from .surveys import surveys
from .tasks import tasks


def register_cli(app: Flask) -> None:
    for group in (db, users, bpmn, instances, tasks, messages, timers, incidents, calendars, schedules):
        app.cli.add_command(group)
    app.cli.add_command(notifications)
    app.cli.add_command(refunds)
    app.cli.add_command(surveys)
    app.cli.add_command(ious)
    app.cli.add_command(dunning_cli)
    app.cli.add_command(customers)
