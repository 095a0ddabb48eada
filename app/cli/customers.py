"""flask --app wsgi customers find PHONE [--json]
flask --app wsgi customers show ID [--limit N] [--json]"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import click

from app.services import customer_history

from .common import HotlineGroup, emit, hotline, json_option, table

customers = HotlineGroup("customers", help="Customers: find one by phone number, show their tickets and calls.")


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value else ""


def _phones(profile: dict) -> str:
    return ", ".join(f"{p['number']} ({p['label']})" if p["label"] else p["number"] for p in profile["phones"])


def _headline(p: dict) -> str:
    return (f"customer {p['id']}: {p['name'] or '(no name)'} [{p['language']}], {p['open_tickets']} open ticket(s), "
            f"{p['tickets']} ticket(s), {p['calls']} call(s)")


@customers.command("find")
@click.argument("phone")
@json_option
def find(phone):
    """The customer with the number PHONE (any spelling: 138 0013 8000, +86-138-0013-8000...)."""
    with hotline().db.transaction() as s:
        result = customer_history.profile(s, customer_history.find(s, phone))

    def human(p: dict) -> None:
        click.echo(_headline(p))
        click.echo(f"phones: {_phones(p)}")

    emit(result, human)


@customers.command("show")
@click.argument("customer_id")
@click.option("--limit", type=click.IntRange(1, 500), default=customer_history.RECENT, show_default=True,
              help="How many recent tickets and calls to list.")
@json_option
def show(customer_id, limit):
    """One customer: profile, phone numbers, open tickets, recent tickets and calls (newest first)."""
    with hotline().db.transaction() as s:
        result = customer_history.history(s, customer_id, limit)

    def human(h: dict) -> None:
        zone = ZoneInfo(hotline().settings.timezone)
        p = h["customer"]
        click.echo(_headline(p))
        click.echo(f"phones: {_phones(p) or '(none)'}")
        if p["notes"]:
            click.echo(f"notes: {p['notes']}")
        ticket_columns = [("business_key", "TICKET"), ("process", "PROCESS"), ("title", "TITLE"),
                          ("status", "STATUS"), ("started", "STARTED"), ("ended", "ENDED")]

        def tickets(rows):
            return [{**r, "started": _when(r["started_at"], zone), "ended": _when(r["ended_at"], zone)} for r in rows]

        click.echo("\nopen tickets:")
        table(tickets(h["open_tickets"]), ticket_columns, "(no open tickets)")
        click.echo("\nrecent tickets:")
        table(tickets(h["tickets"]), ticket_columns, "(no tickets)")
        click.echo("\nrecent calls:")
        table([{**c, "started": _when(c["started_at"], zone)} for c in h["calls"]],
              [("started", "TIME"), ("direction", "DIRECTION"), ("status", "STATUS"), ("queue", "QUEUE"),
               ("wait_seconds", "WAIT S"), ("talk_seconds", "TALK S"), ("agent", "AGENT"),
               ("business_key", "TICKET")], "(no calls)")

    emit(result, human)
