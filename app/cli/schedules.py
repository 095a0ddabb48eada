"""flask --app wsgi schedules list | run-due: processes started by their timer start events."""
from __future__ import annotations

import click

from app.engine import schedules as engine_schedules

from .common import HotlineGroup, emit, hotline, json_option, table

schedules = HotlineGroup("schedules", help="Processes that start on a timer (daily runs and the like).")


def _when(value) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


@schedules.command("list")
@json_option
def list_schedules():
    """Every timer start event of the deployed processes, and when it starts next."""
    with hotline().db.transaction() as s:
        rows = engine_schedules.list_schedules(s)

    def human(found):
        shown = [{**r, "next_due_at": _when(r["next_due_at"]) or ("disabled" if not r["enabled"] else "done"),
                  "last_started_at": _when(r["last_started_at"]),
                  "remaining": "for ever" if r["remaining"] is None else r["remaining"]} for r in found]
        table(shown, [("id", "ID"), ("process", "PROCESS"), ("version", "V"), ("element_id", "START EVENT"),
                      ("timer", "TIMER"), ("next_due_at", "NEXT"), ("remaining", "LEFT"),
                      ("last_started_at", "LAST RUN"), ("last_instance_id", "INSTANCE"), ("last_error", "ERROR")],
              "no process starts on a timer")

    emit(rows, human)


@schedules.command("run-due")
@click.option("--limit", default=100, show_default=True, help="At most this many schedules per run.")
@json_option
def run_due(limit):
    """Start every process whose timer start event is due now (the workers do this every few seconds)."""
    result = hotline().engine.start_due_schedules(limit)

    def human(r):
        for s in r["started"]:
            click.echo(f"started {s['process']} instance {s['instance_id']} (due {s['due_at']})")
        for f in r["failed"]:
            click.echo(f"schedule {f['schedule_id']} failed: {f['error']}")
        click.echo(f"started {len(r['started'])}, failed {len(r['failed'])}, skipped {len(r['skipped'])}")

    emit(result, human)
    if result["failed"]:
        raise SystemExit(1)
