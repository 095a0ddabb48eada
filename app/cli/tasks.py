"""flask --app wsgi tasks list|show|claim|unclaim|assign|complete"""
from __future__ import annotations

import click

from app.engine import queries
from app.models import TaskStatus

from .common import HotlineGroup, emit, hotline, json_option, parse_json_object, table

tasks = HotlineGroup("tasks", help="Work on human tasks.")

_COLUMNS = [("id", "ID"), ("instance_id", "INSTANCE"), ("title", "TITLE"), ("status", "STATUS"),
            ("assignee", "ASSIGNEE"), ("candidate_groups", "GROUPS"), ("priority", "PRIO"), ("due_at", "DUE"),
            ("overdue", "LATE"), ("escalation_level", "LEVEL")]


@tasks.command("list")
@click.option("--user", default=None, help="That user's inbox: their tasks and their groups' open ones.")
@click.option("--group", default=None, help="Tasks offered to this group.")
@click.option("--status", type=click.Choice([TaskStatus.OPEN, TaskStatus.CLAIMED, TaskStatus.COMPLETED,
                                             TaskStatus.CANCELLED]), default=None)
@click.option("--instance", "instance_id", type=int, default=None)
@click.option("--late", is_flag=True, help="Only late tasks: escalated, or open past their due time.")
@json_option
def list_tasks(user, group, status, instance_id, late):
    """Open and claimed tasks, most urgent first (priority, then due time)."""
    with hotline().db.transaction() as s:
        rows = queries.tasks(s, user=user, group=group, status=status, instance_id=instance_id, late=late)
    emit(rows, lambda r: table(r, _COLUMNS, "no tasks"))


@tasks.command("show")
@click.argument("task_id", type=int)
@json_option
def show(task_id):
    """One task with the data its form starts from."""
    emit(hotline().engine.task_detail(task_id))


def _after(task_id: int, verb: str) -> None:
    with hotline().db.transaction() as s:
        from app.models import HumanTask

        row = s.get(HumanTask, task_id)
        out = queries.task_row(row)
    emit(out, f"task {task_id} {verb}: {out['status']}" + (f" ({out['assignee']})" if out["assignee"] else ""))


@tasks.command("claim")
@click.argument("task_id", type=int)
@click.option("--user", required=True)
@json_option
def claim(task_id, user):
    """Take an open task (exactly one of two agents claiming at once wins)."""
    hotline().engine.claim(task_id, user)
    _after(task_id, "claimed")


@tasks.command("unclaim")
@click.argument("task_id", type=int)
@click.option("--user", required=True)
@json_option
def unclaim(task_id, user):
    """Give a claimed task back to its group."""
    hotline().engine.unclaim(task_id, user)
    _after(task_id, "released")


@tasks.command("assign")
@click.argument("task_id", type=int)
@click.option("--to", "assignee", required=True, help="Who gets the task.")
@click.option("--user", default="admin", show_default=True, help="Who reassigns it.")
@json_option
def assign(task_id, assignee, user):
    """Give a task to someone."""
    hotline().engine.assign(task_id, assignee, user)
    _after(task_id, "assigned")


@tasks.command("complete")
@click.argument("task_id", type=int)
@click.option("--user", required=True)
@click.option("--data", default="{}", help="Form data as a JSON object.")
@json_option
def complete(task_id, user, data):
    """Finish a task with form data; the process runs on until it waits."""
    h = hotline()
    h.engine.complete(task_id, user, parse_json_object(data, "--data"))
    with h.db.transaction() as s:
        from app.models import HumanTask

        instance_id = s.get(HumanTask, task_id).instance_id
    detail = h.engine.instance_detail(instance_id)
    out = {"task_id": task_id, "instance_id": instance_id, "instance_status": detail["status"],
           "tasks": detail["tasks"]}
    emit(out, f"task {task_id} completed; {detail['business_key']} is {detail['status']}, "
              f"{len(detail['tasks'])} open task(s)")
