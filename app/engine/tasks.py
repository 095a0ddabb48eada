"""Human tasks: claim, unclaim, assign (compare-and-set on the row) and complete."""
from __future__ import annotations

from uuid import UUID

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select, update

from app.errors import Conflict, Forbidden, NotFound
from app.models import HumanTask, InstanceEvent, TaskStatus
from app.schemas import forms
from app.services import identity

from . import clock, permissions, records
from .instances import require_data
from .runtime import check_active, run_on_instance
from .step import Step


def _load(s, task_id: int) -> HumanTask:
    row = s.get(HumanTask, task_id)
    if row is None:
        raise NotFound(f"task {task_id} does not exist")
    return row


def _require_active(row: HumanTask) -> None:
    if row.status not in TaskStatus.ACTIVE:
        raise Conflict(f"task {row.id} is already {row.status}")


def _event(s, row: HumanTask, kind: str, actor: str, **detail) -> None:
    s.add(InstanceEvent(instance_id=row.instance_id, at=clock.now(), kind=kind, element_id=row.element_id,
                        actor=actor, detail={"task_id": row.id, "title": row.title, **detail}))


def claim(ctx, task_id: int, actor: str) -> None:
    """Take an open task; of two agents claiming at once exactly one wins."""
    with ctx.db.transaction() as s:
        row = _load(s, task_id)
        user = identity.require_user(s, actor)
        _require_active(row)
        check_active(row.instance)
        if row.assignee == actor:
            return
        if not permissions.is_candidate(user, row):
            raise Forbidden(f"{actor} is not a candidate for task {task_id} ({', '.join(row.candidate_groups)})")
        now = clock.now()
        won = s.execute(update(HumanTask)
                        .where(HumanTask.id == task_id, HumanTask.status == TaskStatus.OPEN)
                        .values(status=TaskStatus.CLAIMED, assignee=actor, claimed_at=now, claimed_by=actor)
                        .execution_options(synchronize_session=False)).rowcount
        if won != 1:
            holder = s.scalar(select(HumanTask.assignee).where(HumanTask.id == task_id))
            raise Conflict(f"task {task_id} was already claimed by {holder}")
        _event(s, row, "task_claimed", actor)


def unclaim(ctx, task_id: int, actor: str) -> None:
    with ctx.db.transaction() as s:
        row = _load(s, task_id)
        user = identity.require_user(s, actor)
        _require_active(row)
        if row.assignee is None:
            raise Conflict(f"task {task_id} is not claimed")
        if row.assignee != actor and not user.is_admin:
            raise Forbidden(f"task {task_id} is claimed by {row.assignee}, not {actor}")
        released = s.execute(update(HumanTask)
                             .where(HumanTask.id == task_id, HumanTask.status == TaskStatus.CLAIMED,
                                    HumanTask.assignee == row.assignee)
                             .values(status=TaskStatus.OPEN, assignee=None, claimed_at=None, claimed_by=None)
                             .execution_options(synchronize_session=False)).rowcount
        if released != 1:
            raise Conflict(f"task {task_id} changed while it was being released")
        _event(s, row, "task_unclaimed", actor, previous=row.assignee)


def assign(ctx, task_id: int, assignee: str, actor: str) -> None:
    """Give a task to ``assignee`` (a supervisor's or the current holder's action)."""
    with ctx.db.transaction() as s:
        row = _load(s, task_id)
        user = identity.require_user(s, actor)
        target = identity.require_user(s, assignee)
        _require_active(row)
        check_active(row.instance)
        if not user.is_admin and row.assignee != actor:
            raise Forbidden(f"{actor} may not reassign task {task_id}")
        if not permissions.is_candidate(target, row):
            raise Forbidden(f"{assignee} is not a candidate for task {task_id}")
        previous = row.assignee
        moved = s.execute(update(HumanTask)
                          .where(HumanTask.id == task_id, HumanTask.status.in_(TaskStatus.ACTIVE),
                                 (HumanTask.assignee == previous) if previous else HumanTask.assignee.is_(None))
                          .values(status=TaskStatus.CLAIMED, assignee=assignee, claimed_at=clock.now(),
                                  claimed_by=actor)
                          .execution_options(synchronize_session=False)).rowcount
        if moved != 1:
            raise Conflict(f"task {task_id} changed while it was being assigned")
        _event(s, row, "task_assigned", actor, assignee=assignee, previous=previous)


def complete(ctx, task_id: int, actor: str, data: dict | None = None) -> None:
    """Finish a user task with the form data, then run the process until it waits."""
    data = require_data(data, "form data")
    located: list[records.TaskRecord] = []

    def locate(s) -> records.InstanceRecord:
        row, user_row, instance = records.task_to_complete(s, task_id, actor)
        user = identity.require_actor(s, actor, user_row)
        _require_active(row)
        if not permissions.may_complete(user, row):
            if row.assignee:
                raise Conflict(f"task {task_id} is claimed by {row.assignee}")
            raise Forbidden(f"{actor} is not a candidate for task {task_id}")
        located.append(row)
        return instance  # locked

    def action(step: Step) -> None:
        finish_task(step, task_id, data, actor, row=located[-1])

    run_on_instance(ctx, locate, actor, action,
                    incident_action={"name": "complete", "task_id": task_id, "actor": actor, "data": data})


def finish_task(step: Step, task_id: int, data: dict, actor: str, row: records.TaskRecord | None = None,
                **detail) -> None:
    """Check the form data, hand it to the workflow task and mark the row completed.

    ``row``: the task as the caller read it in this transaction. The row is marked with a
    conditional UPDATE (still open, still held by whom we saw): a claim racing this
    completion either lands first, and this one fails with Conflict, or finds the task completed.
    """
    s = step.session
    current = row if row is not None else records.find_task(s, task_id)
    _require_active(current)
    seen = current.assignee
    if seen not in (None, actor) and not identity.require_actor(s, actor).is_admin:
        raise Conflict(f"task {task_id} was claimed by {seen} meanwhile")
    task = step.workflow.get_task_from_id(UUID(current.spiff_task_id))
    if task is None or task.state != TaskState.READY:
        raise Conflict(f"task {task_id} is no longer waiting for input")
    form = step.compiled.form_for(current.element_id)
    values = forms.clean(form, data) if form is not None else data
    changes = {k: v for k, v in values.items() if task.data.get(k, object()) != v}
    task.set_data(**values)
    task.run()
    step.finished.add(current.spiff_task_id)
    now = clock.now()
    marks = {"status": TaskStatus.COMPLETED, "completed_at": now, "completed_by": actor}
    if seen is None:
        marks.update(assignee=actor, claimed_at=now, claimed_by=actor)
    if not records.mark_task(s, task_id, seen, **marks):
        raise Conflict(f"task {task_id} changed while it was being completed; reload it")
    step.record("task_completed", current.element_id, task_id=task_id, title=current.title, changes=changes,
                **detail)
