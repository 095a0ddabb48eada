"""flask --app wsgi ious list|show|pay, and dunning list|import (the dunning levels as data)."""
from __future__ import annotations

import click

from app.engine import clock
from app.models.iou import IOU_STATUSES, PAYMENT_METHODS
from app.services import dunning, identity
from app.services import ious as iou_service

from .common import HotlineGroup, emit, hotline, json_option, read_text_file, table

ious = HotlineGroup("ious", help="IOUs (credit sales): list, show, record payments.")
dunning_cli = HotlineGroup("dunning", help="The dunning levels IOU collection follows (data, not diagram edits).")

_IOU_COLUMNS = [("id", "ID"), ("business_key", "TICKET"), ("customer_id", "CUSTOMER"), ("amount", "AMOUNT"),
                ("currency", "CUR"), ("paid", "PAID"), ("written_off", "WRITTEN OFF"), ("remaining", "OWED"),
                ("status", "STATUS"), ("responsible_agent", "AGENT"), ("installments", "INST.")]


@ious.command("list")
@click.option("--status", type=click.Choice(IOU_STATUSES), default=None)
@json_option
def list_ious(status):
    """Every IOU with what was paid, written off and is still owed."""
    with hotline().db.transaction() as s:
        rows = [iou_service.summary(i) for i in iou_service.list_ious(s, status)]
    emit(rows, lambda r: table(r, _IOU_COLUMNS, "no IOUs"))


@ious.command("show")
@click.argument("iou")
@json_option
def show(iou):
    """One IOU (by id or ticket, e.g. IOU-2026-000001): its installments and payments."""
    with hotline().db.transaction() as s:
        out = iou_service.detail(iou_service.find(s, iou))

    def human(d):
        click.echo(f"{d['business_key'] or d['id']}: {d['amount']} {d['currency']}, {d['status']}, "
                   f"owed {d['remaining']}, agent {d['responsible_agent']}")
        for i in d["installments"]:
            click.echo(f"  #{i['number']} due {i['due_date']}: {i['amount']} paid {i['paid']} "
                       f"written off {i['written_off']} ({i['status']}, dunning level {i['dunning_level']})")
            for p in i["payments"]:
                click.echo(f"      {p['recorded_at']:%Y-%m-%d %H:%M} {p['amount']} {p['method']} "
                           f"{p['reference']} by {p['recorded_by']}")

    emit(out, human)


@ious.command("pay")
@click.argument("iou")
@click.option("--installment", "installment_no", type=int, required=True, help="Installment number (1, 2, ...).")
@click.option("--amount", required=True, help="Amount paid, e.g. 100.00 (at most what is still owed).")
@click.option("--method", type=click.Choice(PAYMENT_METHODS), default="cash", show_default=True)
@click.option("--reference", default="", help="Receipt or transaction number (booked once per installment).")
@click.option("--user", default="admin", show_default=True, help="Who records the payment.")
@json_option
def pay(iou, installment_no, amount, method, reference, user):
    """Record a payment on installment N of IOU, then tell its collection process.

    The payment is booked first (its own transaction; the database is what counts), then the
    message iou.payment_recorded goes to the installment's waiting step through the engine.
    When no step waits (a call task is open), the message is kept and the process sees the
    payment at its next step anyway.
    """
    h = hotline()
    with h.db.transaction() as s:
        identity.require_user(s, user)
        iou_id = iou_service.find(s, iou).id
        result = iou_service.record_payment(iou_id, installment_no, amount, method, reference, recorded_by=user,
                                            at=clock.now(), _session=s)
    keys = {"iou_id": iou_id, "installment_no": installment_no}
    payload = {"payment_id": result["payment_id"], "amount": str(result["amount"]), "method": method,
               "reference": reference, "remaining": str(result["remaining"]), "settled": result["settled"]}
    correlated = h.engine.correlate(iou_service.PAYMENT_MESSAGE, keys, payload, user)
    out = {**result, "message": correlated.to_dict()}

    def human(r):
        state = "installment settled" if r["settled"] else f"{r['remaining']} {r['currency']} still owed"
        again = " (already booked under this reference)" if r["duplicate"] else ""
        click.echo(f"payment {r['payment_id']}: {r['amount']} {r['currency']} on installment {r['installment_no']}"
                   f"{again}; {state}")
        m = r["message"]
        if m["delivered"]:
            click.echo("the collection process took the payment")
        elif m["buffered"]:
            click.echo("no collection step was waiting; the process sees the payment at its next step")
        for f in m["failed"]:
            click.echo(f"warning: the collection process failed on it (incident {f['incident_id']}): {f['error']}",
                       err=True)

    emit(out, human)


@dunning_cli.command("list")
@click.option("--csv", "as_csv", is_flag=True, help="As CSV, ready to edit and import again.")
@json_option
def list_levels(as_csv):
    """The dunning levels in order: days from the due date (negative: before), action, messages."""
    with hotline().db.transaction() as s:
        ladder = dunning.levels(s)
    if as_csv:
        click.echo(dunning.to_csv(ladder), nl=False)
        return
    emit([lv.to_dict() for lv in ladder],
         lambda r: table(r, [("level", "LEVEL"), ("days", "DAYS"), ("action", "ACTION"), ("message_en", "MESSAGE"),
                             ("message_zh", "消息")], "no dunning levels"))


@dunning_cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
def import_levels(file):
    """Replace every dunning level with FILE.csv (level,days,action,message_en,message_zh).

    All rows or none: every bad row is named with its row number and nothing changes.
    Running IOUs follow the new levels from their next level on.
    """
    text = read_text_file(file)
    levels = dunning.parse_csv(text)
    with hotline().db.transaction() as s:
        result = dunning.replace_levels(s, levels)
    emit(result, f"imported {result['imported']} dunning level(s), replacing {result['replaced']}")
