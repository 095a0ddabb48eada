"""flask --app wsgi refunds list [--status S] [--since DATE] [--until DATE] [--json]"""
from __future__ import annotations

import click

from app.models.refund import RefundStatus
from app.services import refunds as refund_service

from .common import HotlineGroup, emit, hotline, json_option, moment, table

refunds = HotlineGroup("refunds", help="Refunds and their totals per currency.")



@refunds.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(RefundStatus.ALL),
              help="Only refunds with this status (repeat for several).")
@click.option("--since", help="Requested at or after this date (2026-03-01, hotline time zone).")
@click.option("--until", help="Requested before this date.")
@json_option
def list_refunds(statuses, since, until):
    """Refunds, newest first, with the number and amounts per currency."""
    with hotline().db.transaction() as s:
        result = refund_service.report(s, statuses, moment(since, "--since"), moment(until, "--until"))

    def human(r: dict) -> None:
        table(r["refunds"], [("business_key", "REFUND"), ("status", "STATUS"), ("order_reference", "ORDER"),
                             ("amount", "AMOUNT"), ("currency", "CUR"), ("approval_chain", "CHAIN"),
                             ("paid_amount", "PAID"), ("requested_at", "REQUESTED")], "no refunds")
        for t in r["totals"]:
            click.echo(f"total {t['currency']}: {t['count']} refund(s), {t['amount']} requested, "
                       f"{t['paid_amount']} paid")

    emit(result, human)
