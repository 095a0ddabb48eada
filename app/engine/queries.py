"""Read-only views for lists and detail pages: inbox rows, instances, history."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import (
    HumanTask,
    Incident,
    InstanceEvent,
    ProcessInstance,
    ProcessModel,
    ProcessVersion,
    TaskCandidate,
    TaskStatus,
    Timer,
)
from app.services import identity

from . import clock
from .live import release
from .step import jsonable


def processes(s: Session) -> list[dict]:
    rows = s.execute(select(ProcessModel, ProcessVersion)
                     .join(ProcessVersion, ProcessVersion.id == ProcessModel.latest_version_id)
                     .order_by(ProcessModel.key)).all()
    return [{"key": m.key, "title": m.title, "file": m.file, "version": v.number, "dialect": v.dialect,
             "deployed_at": v.deployed_at.isoformat(), "deployed_by": v.deployed_by, "sha256": v.sha256}
            for m, v in rows]


def instance_row(i: ProcessInstance, key: str | None = None) -> dict:
    return {"id": i.id, "business_key": i.business_key, "title": i.title, "status": i.status,
            "process": key or i.version.model.key, "priority": i.priority,
            "started_by": i.started_by, "started_at": i.started_at.isoformat(),
            "ended_at": i.ended_at.isoformat() if i.ended_at else None}


def instances(s: Session, process: str | None = None, status: str | None = None, limit: int = 200) -> list[dict]:
    q = (select(ProcessInstance, ProcessModel.key)
         .join(ProcessVersion, ProcessVersion.id == ProcessInstance.version_id)
         .join(ProcessModel, ProcessModel.id == ProcessVersion.model_id)
         .order_by(ProcessInstance.id.desc()).limit(limit))
    if process:
        q = q.where(ProcessModel.key == process)
    if status:
        q = q.where(ProcessInstance.status == status)
    return [instance_row(i, key) for i, key in s.execute(q).all()]


def task_row(t: HumanTask) -> dict:
    return {"id": t.id, "instance_id": t.instance_id, "element_id": t.element_id, "title": t.title,
            "status": t.status, "assignee": t.assignee, "candidate_groups": t.candidate_groups,
            "candidate_users": t.candidate_users, "form_key": t.form_key, "priority": t.priority,
            "due_at": t.due_at.isoformat() if t.due_at else None, "created_at": t.created_at.isoformat(),
            "completed_by": t.completed_by,
            # late: an SLA escalation fired on it, or it is still open past its due time
            "overdue": t.is_late(clock.now()), "escalation_level": t.escalation_level}


def tasks(s: Session, user: str | None = None, group: str | None = None, status: str | None = None,
          instance_id: int | None = None, limit: int = 500, late: bool = False) -> list[dict]:
    """Open work; ``user`` gives that person's inbox: theirs plus their groups' unclaimed tasks.
    ``late``: only tasks an escalation fired on or past their due time."""
    q = select(HumanTask).order_by(HumanTask.priority.desc(), HumanTask.due_at.is_(None), HumanTask.due_at,
                                   HumanTask.id).limit(limit)
    statuses = [status] if status else list(TaskStatus.ACTIVE)
    q = q.where(HumanTask.status.in_(statuses))
    if instance_id is not None:
        q = q.where(HumanTask.instance_id == instance_id)
    if late:
        q = q.where(HumanTask.late_at(clock.now()))
    if group:
        q = q.where(HumanTask.id.in_(select(TaskCandidate.task_id).where(TaskCandidate.kind == "group",
                                                                         TaskCandidate.name == group)))
    if user:
        u = identity.require_user(s, user)
        if not u.is_admin:
            # Mirrors permissions.is_candidate: named user, one of their groups, or nobody named.
            named = select(TaskCandidate.task_id).where(or_(
                (TaskCandidate.kind == "group") & TaskCandidate.name.in_(identity.group_names(u)),
                (TaskCandidate.kind == "user") & (TaskCandidate.name == user)))
            unnamed = ~select(TaskCandidate.task_id).where(TaskCandidate.task_id == HumanTask.id).exists()
            q = q.where(or_(HumanTask.assignee == user,
                            HumanTask.assignee.is_(None) & or_(HumanTask.id.in_(named), unnamed)))
    return [task_row(t) for t in s.scalars(q)]


def process_data(workflow) -> dict[str, Any]:
    """The ticket's data as a person reads it: what the process ended with, or while it runs,
    what its completed steps set, later steps winning (as SpiffWorkflow merges the branches
    at the end). A side path, such as an escalation on a boundary timer, counts too; the
    data of a called process stays its own until the call activity completes."""
    if workflow.completed:
        return workflow.data
    done = [t for t in workflow.tasks.values() if t.state == TaskState.COMPLETED and not _one_of_many(t)]
    # Only where each path has got to: a step's data flows on into the completed step after it,
    # so a variable a later step deleted stays deleted.
    reached = [t for t in done if not any(c.state == TaskState.COMPLETED and not _one_of_many(c) for c in t.children)]
    merged: dict[str, Any] = {}
    for task in sorted(reached, key=lambda t: t.last_state_change):
        merged.update(task.data)
    return merged


def _one_of_many(task) -> bool:
    """An instance of a loop or multi-instance task: its variables (the item, the form answers)
    are its own; the ticket sees what the loop collects when it completes."""
    parent = task.parent
    return parent is not None and isinstance(parent.task_spec, LoopTask) and \
        task.task_spec.name == parent.task_spec.task_spec


def instance_detail(s: Session, ctx, instance_id: int) -> dict[str, Any]:
    instance = s.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"instance {instance_id} does not exist")
    compiled = ctx.specs.get(s, instance.version_id)
    workflow = compiled.load(instance.state)
    data = process_data(workflow)
    release(workflow)  # read once: freed now, not by the cyclic collector
    history = s.scalars(select(InstanceEvent).where(InstanceEvent.instance_id == instance_id)
                        .order_by(InstanceEvent.id)).all()
    incidents = s.scalars(select(Incident).where(Incident.instance_id == instance_id).order_by(Incident.id)).all()
    timers = s.scalars(select(Timer).where(Timer.instance_id == instance_id).order_by(Timer.due_at)).all()
    return {
        **instance_row(instance),
        "version": instance.version.number,
        "lock_version": instance.lock_version,
        "data": jsonable({k: v for k, v in data.items() if not k.startswith("_")}),
        "tasks": tasks(s, instance_id=instance_id),
        "timers": [{"element_id": t.element_id, "due_at": t.due_at.isoformat()} for t in timers],
        "incidents": [{"id": i.id, "element_id": i.element_id, "error": i.error, "status": i.status,
                       "attempts": i.attempts, "created_at": i.created_at.isoformat()} for i in incidents],
        "history": [{"at": e.at.isoformat(), "kind": e.kind, "element_id": e.element_id, "actor": e.actor,
                     "detail": e.detail} for e in history],
    }


def open_incidents(s: Session) -> list[dict]:
    rows = s.scalars(select(Incident).where(Incident.status == "open").order_by(Incident.id)).all()
    return [{"id": i.id, "instance_id": i.instance_id, "process": i.process_key, "element_id": i.element_id,
             "error": i.error, "attempts": i.attempts, "created_at": i.created_at.isoformat()} for i in rows]


def task_detail(s: Session, ctx, task_id: int) -> dict[str, Any]:
    """A task row plus the process data its form starts from."""
    row = s.get(HumanTask, task_id)
    if row is None:
        raise NotFound(f"task {task_id} does not exist")
    compiled = ctx.specs.get(s, row.instance.version_id)
    workflow = compiled.load(row.instance.state)
    task = workflow.get_task_from_id(UUID(row.spiff_task_id))
    data = task.data if task is not None else {}
    release(workflow)  # read once: freed now, not by the cyclic collector
    element = compiled.element(row.element_id)
    return {**task_row(row), "business_key": row.instance.business_key,
            "instructions": element.get("documentation", ""), "data": jsonable(data)}
