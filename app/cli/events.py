"""flask --app wsgi messages send | timers fire-due | incidents list|retry"""
from __future__ import annotations

import click

from app.engine import queries

from .common import HotlineGroup, emit, hotline, json_option, parse_json_object, table

messages = HotlineGroup("messages", help="Send messages to processes.")
timers = HotlineGroup("timers", help="Fire due timers.")
incidents = HotlineGroup("incidents", help="Failed steps and their retry.")


@messages.command("send")
@click.argument("name")
@click.option("--keys", default="{}", help='Correlation keys as JSON, e.g. \'{"caller": "+8613800000000"}\'.')
@click.option("--data", default="{}", help="Message payload as a JSON object.")
@click.option("--user", "actor", default="admin", show_default=True)
@json_option
def send(name, keys, data, actor):
    """Deliver to waiting instances, else start instances, else keep it for later."""
    result = hotline().engine.correlate(name, parse_json_object(keys, "--keys"), parse_json_object(data, "--data"),
                                        actor)
    out = result.to_dict()
    delivered = f"delivered to instance(s) {', '.join(map(str, result.delivered))}"
    if result.failed:
        # --json still prints the whole result; people get what worked, then the error line.
        emit(out, lambda _: click.echo(delivered) if result.delivered else None)
        reasons = "; ".join(f"instance {f['instance_id']}: {f['error'].strip()}" for f in result.failed)
        click.echo(f"error: delivery failed: {reasons}", err=True)
        raise SystemExit(1)
    if result.delivered:
        text = delivered
    elif result.started:
        text = f"started instance(s) {', '.join(map(str, result.started))}"
    else:
        text = f"no receiver yet; kept as message {result.buffered}"
    emit(out, text)


@timers.command("fire-due")
@click.option("--limit", default=500, show_default=True, help="At most this many instances per run.")
@json_option
def fire_due(limit):
    """Fire every timer whose time has come."""
    result = hotline().engine.fire_due_timers(limit)
    emit(result, f"fired {len(result['fired'])}, failed {len(result['failed'])}, skipped {len(result['skipped'])}")


@incidents.command("list")
@json_option
def list_incidents():
    """Open incidents: failed steps waiting for someone to retry them."""
    with hotline().db.transaction() as s:
        rows = queries.open_incidents(s)
    emit(rows, lambda r: table(r, [("id", "ID"), ("instance_id", "INSTANCE"), ("process", "PROCESS"),
                                   ("element_id", "ELEMENT"), ("attempts", "TRIES"), ("error", "ERROR")],
                               "no open incidents"))


@incidents.command("retry")
@click.argument("incident_id", type=int)
@click.option("--user", "actor", default="admin", show_default=True)
@json_option
def retry(incident_id, actor):
    """Run the failed step again; the incident closes if it succeeds."""
    result = hotline().engine.retry_incident(incident_id, actor)
    emit(result, f"incident {incident_id} resolved")
