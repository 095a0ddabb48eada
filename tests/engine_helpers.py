"""Read what the engine wrote, the way inboxes, workers and managers see it (tables, not Spiff state)."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import undefer

from app.models import (
    BufferedMessage,
    HumanTask,
    Incident,
    InstanceEvent,
    MessageSubscription,
    ProcessInstance,
    TaskStatus,
    Timer,
)
from app.services import identity

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning; tests freeze the clock here


def tasks(db, instance_id: int, status: str | tuple[str, ...] | None = TaskStatus.ACTIVE) -> list[HumanTask]:
    """human_task rows of an instance (open and claimed by default), oldest first."""
    q = select(HumanTask).where(HumanTask.instance_id == instance_id).order_by(HumanTask.id)
    if status is not None:
        q = q.where(HumanTask.status.in_((status,) if isinstance(status, str) else status))
    with db.transaction() as s:
        return list(s.scalars(q))


def open_elements(db, instance_id: int) -> list[str]:
    return sorted(t.element_id for t in tasks(db, instance_id))


def task(db, instance_id: int, element_id: str) -> HumanTask:
    """The one active task of ``element_id``."""
    found = [t for t in tasks(db, instance_id) if t.element_id == element_id]
    assert len(found) == 1, f"expected one open {element_id!r}, open: {open_elements(db, instance_id)}"
    return found[0]


def instance(db, instance_id: int) -> ProcessInstance:
    """The instance row, detached, with its (otherwise deferred) serialized state loaded."""
    with db.transaction() as s:
        return s.get(ProcessInstance, instance_id, options=[undefer(ProcessInstance.state)])


def status(db, instance_id: int) -> str:
    return instance(db, instance_id).status


def history(db, instance_id: int, kind: str | None = None) -> list[InstanceEvent]:
    q = select(InstanceEvent).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.id)
    if kind is not None:
        q = q.where(InstanceEvent.kind == kind)
    with db.transaction() as s:
        return list(s.scalars(q))


def kinds(db, instance_id: int) -> list[tuple[str, str | None]]:
    return [(e.kind, e.element_id) for e in history(db, instance_id)]


def timers(db, instance_id: int | None = None) -> list[Timer]:
    q = select(Timer).order_by(Timer.due_at)
    if instance_id is not None:
        q = q.where(Timer.instance_id == instance_id)
    with db.transaction() as s:
        return list(s.scalars(q))


def incidents(db, instance_id: int | None = None) -> list[Incident]:
    q = select(Incident).order_by(Incident.id)
    if instance_id is not None:
        q = q.where(Incident.instance_id == instance_id)
    with db.transaction() as s:
        return list(s.scalars(q))


def subscriptions(db, instance_id: int) -> list[MessageSubscription]:
    with db.transaction() as s:
        return list(s.scalars(select(MessageSubscription).where(MessageSubscription.instance_id == instance_id)))


def buffered_count(db) -> int:
    with db.transaction() as s:
        return s.scalar(select(func.count()).select_from(BufferedMessage))


def count(db, model) -> int:
    with db.transaction() as s:
        return s.scalar(select(func.count()).select_from(model))


def task_data(engine, instance_id: int, element_id: str) -> dict:
    return engine.task_detail(task(engine.db, instance_id, element_id).id)["data"]


def complete(engine, instance_id: int, element_id: str, data: dict | None = None, actor: str = "admin") -> None:
    engine.complete(task(engine.db, instance_id, element_id).id, actor, data or {})


def users(db, **members: list[str]) -> None:
    """users(db, ann=["dispatch"], bob=["field"]): people and their groups (lane names)."""
    with db.transaction() as s:
        for name, groups in members.items():
            identity.ensure_user(s, name, groups=groups)
