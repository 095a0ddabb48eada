"""flask --app wsgi refunds list [--status S] [--since DATE] [--until DATE] [--json]"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import click

from app.errors import InvalidInput
from app.models.refund import RefundStatus
from app.services import refunds as refund_service

from .common import HotlineGroup, emit, hotline, json_option, table

refunds = HotlineGroup("refunds", help="Refunds and their totals per currency.")


def _moment(value: str | None, option: str) -> datetime | None:
    """A date (midnight) or a date and time; without an offset it is in the hotline's time zone."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{option}: '{value}' is not a date like 2026-03-01 or 2026-03-01T08:00") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(hotline().settings.timezone))
    return parsed


@refunds.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(RefundStatus.ALL),
              help="Only refunds with this status (repeat for several).")
@click.option("--since", help="Requested at or after this date (2026-03-01, hotline time zone).")
@click.option("--until", help="Requested before this date.")
@json_option
def list_refunds(statuses, since, until):
    """Refunds, newest first, with the number and amounts per currency."""
    with hotline().db.transaction() as s:
        result = refund_service.report(s, statuses, _moment(since, "--since"), _moment(until, "--until"))

    def human(r: dict) -> None:
        table(r["refunds"], [("business_key", "REFUND"), ("status", "STATUS"), ("order_reference", "ORDER"),
                             ("amount", "AMOUNT"), ("currency", "CUR"), ("approval_chain", "CHAIN"),
                             ("paid_amount", "PAID"), ("requested_at", "REQUESTED")], "no refunds")
        for t in r["totals"]:
            click.echo(f"total {t['currency']}: {t['count']} refund(s), {t['amount']} requested, "
                       f"{t['paid_amount']} paid")

    emit(result, human)
