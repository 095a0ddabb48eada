"""What BPMN scripts, conditions and expressions can use, and how service tasks run.

Authors are trusted (designer role), so scripts are plain Python; they get a curated set
of helpers, not the application's internals.
"""
from __future__ import annotations

import datetime as _datetime_module
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
from SpiffWorkflow.spiff.specs.defaults import ServiceTask as _SpiffServiceTask

from app.services import context as service_context
from app.services import registry as services

from . import clock
from .boundaries import late_tasks
from .calendars import Calendars, script_helpers


def _now() -> datetime:
    return clock.now()


def _today() -> date:
    return clock.now().date()


def _parse_datetime(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_datetime_module.UTC)


def _add(value: str | datetime, **delta: float) -> datetime:
    """add(due, days=3, hours=2): plain calendar arithmetic."""
    return _parse_datetime(value) + timedelta(**delta)


def _days_between(start: str | datetime | date, end: str | datetime | date) -> int:
    def as_date(v):
        if isinstance(v, datetime):
            return v.date()
        if isinstance(v, date):
            return v
        return _parse_datetime(v).date()

    return (as_date(end) - as_date(start)).days


def _iso(value: datetime | date) -> str:
    return value.isoformat()


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


SCRIPT_HELPERS: dict[str, Any] = {
    "now": _now,
    "today": _today,
    "parse_datetime": _parse_datetime,
    "add": _add,
    "days_between": _days_between,
    "iso": _iso,
    "money": _money,
    "Decimal": Decimal,
    "timedelta": timedelta,
    "datetime": _datetime_module,  # the module, as real-world diagrams expect
}


class HotlineScriptEngine(PythonScriptEngine):
    """One per process version: the helpers, ``lookup`` over that version's tables, and
    ``business_due(hours=4)`` & co. over the engine's business calendars (see calendars.py)."""

    def __init__(self, lookups: dict[str, dict] | None = None, calendars: Calendars | None = None):
        tables = dict(lookups or {})

        def lookup(table: str, key: Any, default: Any = None) -> Any:
            """lookup("areas", "Haidian"): a value from bpmn/lookups/areas.json."""
            if table not in tables:
                raise KeyError(f"no lookup table '{table}' (add bpmn/lookups/{table}.json)")
            return tables[table].get(str(key), default)

        helpers = {**SCRIPT_HELPERS, "lookup": lookup, **script_helpers(calendars, _parse_datetime)}
        super().__init__(environment=TaskDataEnvironment(helpers))

    def call_service(self, task, operation_name, operation_params, **_):
        params = {name: spec["value"] for name, spec in operation_params.items()}
        with service_context.running(lambda: late_tasks(task)):
            return services.call(operation_name, params)


class HotlineServiceTask(_SpiffServiceTask):
    """Stores the operation's Python result (Decimals intact) instead of parsing JSON."""

    def _execute(self, task):
        result = task.workflow.script_engine.call_service(
            task, operation_name=self.operation_name, operation_params=self.evaluate_params(task)
        )
        task.data[self.result_variable] = result
        return True


SCRIPT_ENGINE = HotlineScriptEngine()
