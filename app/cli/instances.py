"""flask --app wsgi instances start|list|show|suspend|resume|terminate"""
from __future__ import annotations

import click

from app.engine import queries
from app.models import InstanceStatus

from .common import HotlineGroup, emit, hotline, json_option, parse_json_object, table

instances = HotlineGroup("instances", help="Start and inspect process instances.")


@instances.command("start")
@click.argument("key")
@click.option("--data", default="{}", help="Start data as a JSON object.")
@click.option("--user", "actor", default="admin", show_default=True, help="Who starts it.")
@click.option("--business-key", default=None, help="Use this business key instead of a generated one.")
@json_option
def start(key, data, actor, business_key):
    """Start the latest version of process KEY."""
    h = hotline()
    instance_id = h.engine.start(key, parse_json_object(data, "--data"), actor, business_key=business_key)
    detail = h.engine.instance_detail(instance_id)
    out = {k: detail[k] for k in ("id", "business_key", "status", "process", "tasks")}
    emit(out, f"started {detail['business_key']} (instance {instance_id}), {detail['status']}, "
              f"{len(detail['tasks'])} open task(s)")


@instances.command("list")
@click.option("--process", default=None, help="Only instances of this process key.")
@click.option("--status", type=click.Choice(InstanceStatus.ALL), default=None)
@click.option("--limit", default=200, show_default=True)
@json_option
def list_instances(process, status, limit):
    """Newest instances first."""
    with hotline().db.transaction() as s:
        rows = queries.instances(s, process, status, limit)
    emit(rows, lambda r: table(r, [("id", "ID"), ("business_key", "TICKET"), ("process", "PROCESS"),
                                   ("status", "STATUS"), ("started_at", "STARTED"), ("title", "TITLE")],
                               "no instances"))


@instances.command("show")
@click.argument("instance_id", type=int)
@json_option
def show(instance_id):
    """Status, data, history and open tasks of one instance."""
    detail = hotline().engine.instance_detail(instance_id)

    def human(d):
        click.echo(f"{d['business_key']}  {d['title']}  [{d['status']}]  process {d['process']} v{d['version']}")
        ended = f", ended {d['ended_at']}" if d["ended_at"] else ""
        click.echo(f"started {d['started_at']} by {d['started_by']}{ended}")
        click.echo("\ndata:")
        for k, v in sorted(d["data"].items()):
            click.echo(f"  {k} = {v!r}")
        click.echo("\nopen tasks:")
        table(d["tasks"], [("id", "ID"), ("title", "TITLE"), ("status", "STATUS"), ("assignee", "ASSIGNEE"),
                           ("candidate_groups", "GROUPS"), ("due_at", "DUE")])
        if d["timers"]:
            click.echo("\ntimers:")
            table(d["timers"], [("element_id", "ELEMENT"), ("due_at", "DUE")])
        if d["incidents"]:
            click.echo("\nincidents:")
            table(d["incidents"], [("id", "ID"), ("status", "STATUS"), ("element_id", "ELEMENT"), ("error", "ERROR")])
        click.echo("\nhistory:")
        table(d["history"], [("at", "AT"), ("kind", "WHAT"), ("element_id", "ELEMENT"), ("actor", "BY")])

    emit(detail, human)


def _simple(name: str, help_text: str, call):
    @instances.command(name, help=help_text)
    @click.argument("instance_id", type=int)
    @click.option("--user", "actor", default="admin", show_default=True)
    @click.option("--reason", default="", help="Why (kept in the history).")
    @json_option
    def command(instance_id, actor, reason):
        call(hotline().engine, instance_id, actor, reason)
        detail = hotline().engine.instance_detail(instance_id)
        emit({"id": instance_id, "status": detail["status"]}, f"{detail['business_key']}: {detail['status']}")

    return command


_simple("suspend", "Pause an instance: its tasks cannot be completed, its timers wait.",
        lambda e, i, a, r: e.suspend(i, a, r))
_simple("resume", "Continue a suspended instance.", lambda e, i, a, r: e.resume(i, a))
_simple("terminate", "End an instance now; its open tasks are cancelled.", lambda e, i, a, r: e.terminate(i, a, r))
