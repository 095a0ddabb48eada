"""flask --app wsgi calendars list|show|import-holidays"""
from __future__ import annotations

from pathlib import Path

import click

from app.services import calendar_store

from .common import HotlineGroup, emit, hotline, json_option, read_text_file, table

calendars = HotlineGroup("calendars", help="Business calendars: working hours, shifts, holidays.")


@calendars.command("list")
@json_option
def list_calendars():
    """Every calendar with its week (a fresh database gets the default calendar now)."""
    with hotline().db.transaction() as s:
        rows = [calendar_store.summary(c) for c in calendar_store.load_calendars(s).all()]

    def human(rows):
        table([{**r, "default": "yes" if r["default"] else "", "mon_fri": r["week"]["Monday"],
                "weekend": r["week"]["Saturday"]} for r in rows],
              [("name", "NAME"), ("default", "DEFAULT"), ("time_zone", "TIME ZONE"), ("mon_fri", "MONDAY"),
               ("weekend", "SATURDAY"), ("holidays", "HOLIDAYS"), ("working_days", "WORKING DAYS")])

    emit(rows, human)


@calendars.command("show")
@click.argument("name", required=False)
@json_option
def show(name):
    """Hours, shifts, holidays and extra working days of calendar NAME (default: the default one)."""
    with hotline().db.transaction() as s:
        out = calendar_store.detail(calendar_store.to_work_calendar(calendar_store.calendar_row(s, name)))

    def human(c):
        click.echo(f"{c['name']}{' (default)' if c['default'] else ''}: {c['title'] or '-'}, {c['time_zone']}")
        for day, hours in c["week"].items():
            click.echo(f"  {day:<10} {hours}")
        for shift in c["shifts"]:
            click.echo(f"  shift {shift['name']}: {shift['weekday']} {shift['hours']}")
        for d in c["holidays"]:
            click.echo(f"  {d['date']}  holiday       {d['name']}")
        for d in c["working_days"]:
            click.echo(f"  {d['date']}  working day   {d['name']} ({', '.join(d['hours'])})")

    emit(out, human)


@calendars.command("import-holidays")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--calendar", "name", default=None, help="Calendar to import into (default: the default one).")
@json_option
def import_holidays(file, name):
    """Import FILE.csv with rows date,name[,working]; working=1 marks a make-up working day.

    All rows or none: a bad row stops the import and is named with its line number.
    """
    text = read_text_file(file)
    h = hotline()
    with h.db.transaction() as s:
        result = calendar_store.import_days(s, text, name, source=Path(file).name)
    h.engine.calendars.invalidate()  # this process's scripts see the change at once; others within the TTL
    emit(result, f"calendar {result['calendar']}: imported {result['holidays']} holiday(s) and "
                 f"{result['working_days']} working day(s) ({result['replaced']} replaced)")
