"""The engine's own rows on its hot path: read and written with SQL statements, not the ORM.

Every start and every task completion reads and writes the same few rows (the instance,
its human tasks, its history). Through the ORM's unit of work these cost about two thirds
of a fresh instance's operation (bench/RESULTS.md, "Where the time goes"); the same
statements issued directly cost a third of that. So the engine keeps these rows as plain
records, and everything else (domain services, admin commands, lists) keeps the ORM.

An instance is written back with its lock version in the ``WHERE`` clause: a concurrent
change, or an ORM write to the same row in this transaction, makes the write fail with
``Conflict`` instead of overwriting.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import HumanTask, InstanceEvent, ProcessInstance, TaskCandidate, TaskStatus, User

_INSTANCE = ProcessInstance.__table__
_TASK = HumanTask.__table__
_CANDIDATE = TaskCandidate.__table__
_EVENT = InstanceEvent.__table__
_USER = User.__table__

_INSTANCE_COLUMNS = ("id", "version_id", "business_key", "title", "status", "customer_id", "priority",
                     "lock_version", "started_by", "started_at", "ended_at")


@dataclass(slots=True, eq=False)
class InstanceRecord:
    """The ``process_instance`` row an engine transaction works on (without its state)."""

    id: int
    version_id: int
    business_key: str
    title: str
    status: str
    customer_id: int | None
    priority: int
    lock_version: int
    started_by: str
    started_at: datetime
    ended_at: datetime | None


@dataclass(slots=True, eq=False)
class TaskRecord:
    """The columns of a ``human_task`` row the engine decides with."""

    id: int
    instance_id: int
    spiff_task_id: str
    element_id: str
    title: str
    status: str
    assignee: str | None
    candidate_groups: list
    candidate_users: list


# Built once: a statement made per call costs more Python than the database takes to run it.
_INSTANCE_SELECT = select(*(_INSTANCE.c[name] for name in _INSTANCE_COLUMNS)).where(
    _INSTANCE.c.id == bindparam("instance_id"))
_LOCK = _INSTANCE_SELECT.with_for_update(key_share=True)
_LOCK_WITH_STATE = _INSTANCE_SELECT.add_columns(_INSTANCE.c.state).with_for_update(key_share=True)
_STATE = select(_INSTANCE.c.state).where(_INSTANCE.c.id == bindparam("instance_id"))
_INSERT_INSTANCE = insert(_INSTANCE).returning(_INSTANCE.c.id)
# UPDATEs take their SET columns from the parameters' names (status=..., state=...).
_SAVE = update(_INSTANCE).where(_INSTANCE.c.id == bindparam("b_id"),
                                _INSTANCE.c.lock_version == bindparam("b_seen_version"))
_TASK_COLUMNS = select(*(_TASK.c[name] for name in TaskRecord.__slots__))
_TASK_BY_ID = _TASK_COLUMNS.where(_TASK.c.id == bindparam("task_id"))
_ACTIVE_TASKS = _TASK_COLUMNS.where(_TASK.c.instance_id == bindparam("instance_id"),
                                    _TASK.c.status.in_(TaskStatus.ACTIVE)).order_by(_TASK.c.id)
_ACTIVE = _TASK.c.status.in_(TaskStatus.ACTIVE)
_MARK_UNHELD = update(_TASK).where(_TASK.c.id == bindparam("b_id"), _ACTIVE, _TASK.c.assignee.is_(None))
_MARK_HELD = update(_TASK).where(_TASK.c.id == bindparam("b_id"), _ACTIVE, _TASK.c.assignee == bindparam("b_held"))
_CANCEL = update(_TASK).where(_TASK.c.id.in_(bindparam("b_ids", expanding=True)), _ACTIVE)
# A completion's first statement: the task, who acts, and the instance held for the transaction.
_TASK_TO_COMPLETE = (
    _TASK_COLUMNS.add_columns(_USER.c.id, _USER.c.is_admin, _USER.c.is_active,
                              *(_INSTANCE.c[name] for name in _INSTANCE_COLUMNS))
    .select_from(_TASK.join(_INSTANCE, _INSTANCE.c.id == _TASK.c.instance_id)
                 .outerjoin(_USER, _USER.c.username == bindparam("b_actor")))
    .where(_TASK.c.id == bindparam("b_id"))
    .with_for_update(key_share=True, of=_INSTANCE))
_INSERT_TASKS = insert(_TASK).returning(_TASK.c.id, sort_by_parameter_order=True)
_INSERT_CANDIDATES = insert(_CANDIDATE)
_INSERT_EVENTS = insert(_EVENT)


def lock_instance(s: Session, instance_id: int, with_state: bool) -> tuple[InstanceRecord, str | None]:
    """The instance row, held until commit (``FOR NO KEY UPDATE``: rows that only point at the
    instance, like its history and tasks, can still be written), and its state when asked."""
    row = s.execute(_LOCK_WITH_STATE if with_state else _LOCK, {"instance_id": instance_id}).first()
    if row is None:
        raise NotFound(f"instance {instance_id} does not exist")
    return InstanceRecord(*row[:len(_INSTANCE_COLUMNS)]), (row[-1] if with_state else None)


def instance_state(s: Session, instance_id: int) -> str:
    return s.execute(_STATE, {"instance_id": instance_id}).scalar_one()


def insert_instance(s: Session, **values: Any) -> InstanceRecord:
    values.setdefault("lock_version", 1)
    instance_id = s.execute(_INSERT_INSTANCE, [values]).scalar_one()
    return InstanceRecord(id=instance_id, customer_id=values.pop("customer_id", None),
                          ended_at=None, **{k: v for k, v in values.items() if k in _INSTANCE_COLUMNS})


def save_instance(s: Session, instance: InstanceRecord, state: str, updated_at: datetime,
                  events: list[dict] = ()) -> None:
    """Append ``events`` to the history, write the instance back and bump its lock version;
    ``Conflict`` when someone else changed it first (the transaction then rolls back whole)."""
    values = {"status": instance.status, "customer_id": instance.customer_id, "ended_at": instance.ended_at,
              "state": state, "updated_at": updated_at, "lock_version": instance.lock_version + 1}
    if s.bind.dialect.name == "postgresql":
        written = _save_with_history_pg(s, instance, values, events)
    else:
        insert_events(s, list(events))
        written = s.execute(_SAVE, {"b_id": instance.id, "b_seen_version": instance.lock_version, **values}).rowcount
    if written != 1:
        raise Conflict(f"instance {instance.business_key} was changed by someone else; reload and try again")
    instance.lock_version += 1


_PG_SAVE = ("UPDATE process_instance SET status = %(status)s, customer_id = %(customer_id)s, "
            "ended_at = %(ended_at)s, state = %(state)s, updated_at = %(updated_at)s, lock_version = %(lock_version)s "
            "WHERE id = %(b_id)s AND lock_version = %(b_seen_version)s")


def _save_with_history_pg(s: Session, instance: InstanceRecord, values: dict, events: list[dict]) -> int:
    """The history rows and the instance in ONE statement (a data-modifying WITH): the last
    round trip of every engine transaction but the commit. The rows count (``rowcount``) is
    the instance's; the history rows are written whether or not it matched, and a mismatch
    rolls them back with the rest."""
    params = {"b_id": instance.id, "b_seen_version": instance.lock_version, **values}
    rows = []
    for n, event in enumerate(events):
        rows.append(f"(%(i{n})s, %(a{n})s, %(k{n})s, %(e{n})s, %(u{n})s, %(d{n})s::jsonb)")
        params.update({f"i{n}": event["instance_id"], f"a{n}": event["at"], f"k{n}": event["kind"],
                       f"e{n}": event["element_id"], f"u{n}": event["actor"], f"d{n}": json.dumps(event["detail"])})
    sql = _PG_SAVE
    if rows:
        sql = ("WITH history AS (INSERT INTO instance_event (instance_id, at, kind, element_id, actor, detail) "
               f"VALUES {', '.join(rows)}) {_PG_SAVE}")
    return s.connection().exec_driver_sql(sql, params).rowcount


def find_task(s: Session, task_id: int) -> TaskRecord:
    row = s.execute(_TASK_BY_ID, {"task_id": task_id}).first()
    if row is None:
        raise NotFound(f"task {task_id} does not exist")
    return TaskRecord(*row)


def task_to_complete(s: Session, task_id: int, actor: str) -> tuple[TaskRecord, tuple | None, InstanceRecord]:
    """The task, the acting user (id, is_admin, is_active; None when there is no such user) and
    the task's instance, locked as ``lock_instance`` does: one round trip instead of three."""
    row = s.execute(_TASK_TO_COMPLETE, {"b_id": task_id, "b_actor": actor}).first()
    if row is None:
        raise NotFound(f"task {task_id} does not exist")
    n = len(TaskRecord.__slots__)
    user = None if row[n] is None else tuple(row[n:n + 3])
    return TaskRecord(*row[:n]), user, InstanceRecord(*row[n + 3:])


def active_tasks(s: Session, instance_id: int) -> list[TaskRecord]:
    rows = s.execute(_ACTIVE_TASKS, {"instance_id": instance_id})
    return [TaskRecord(*row) for row in rows]


def mark_task(s: Session, task_id: int, held_by: str | None, **values: Any) -> bool:
    """Change an active task held by ``held_by`` (None: nobody); False when it changed meanwhile."""
    if held_by is None:
        return s.execute(_MARK_UNHELD, {"b_id": task_id, **values}).rowcount == 1
    return s.execute(_MARK_HELD, {"b_id": task_id, "b_held": held_by, **values}).rowcount == 1


def cancel_tasks(s: Session, task_ids: list[int]) -> None:
    s.execute(_CANCEL, {"b_ids": task_ids, "status": TaskStatus.CANCELLED})


def insert_tasks(s: Session, rows: list[dict]) -> list[int]:
    """New ``human_task`` rows (with their ``task_candidate`` rows); their ids, in order."""
    candidates = [row.pop("candidates") for row in rows]
    ids = list(s.execute(_INSERT_TASKS, rows).scalars())
    offers = [{"task_id": task_id, "kind": kind, "name": name}
              for task_id, wanted in zip(ids, candidates, strict=True) for kind, name in wanted]
    if offers:
        s.execute(_INSERT_CANDIDATES, offers)
    return ids


def insert_events(s: Session, events: list[dict]) -> None:
    if events:
        s.execute(_INSERT_EVENTS, events)
