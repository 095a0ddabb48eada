"""Escalation of late human tasks: the ``task.escalate`` service operation.

An SLA boundary timer on a user task runs the ``escalation`` call activity (bpmn/escalation.bpmn),
which calls ``task.escalate`` for the instance whose timer fired: the late tasks go one level up
(``escalation_level``), get a higher priority, are flagged ``overdue``, may get a new due time,
and may be taken from their group (and from the agent holding them) and offered to a supervisor
group instead. Each escalated task gets a ``task_escalated`` history event.

When it applies. The operation runs in the middle of an engine step, before the step knows its
outcome: an interrupting timer has already cancelled the late task (its row still says open), and
the path may open a task again before the step ends (a loop back into the task, now for the
supervisors). So the operation only decides and remembers the request; the engine's sync step,
which makes the ``human_task`` rows agree with the workflow at the end of the same step, hands
the rows still active and the rows it just created to ``settle``. Tasks cancelled in the step are
left alone; tasks opened later in the step are escalated too, at least to the level (and the
priority) the late task reached, so a reopened task does not start again from level 0. All of it
commits with the step, or not at all. This module is the only writer of the escalation columns.
Code that calls the operation outside an engine step (no sync follows) calls ``settle`` itself.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Group, HumanTask, ProcessInstance, TaskStatus

from . import context
from .notify import FALLBACK_SUPERVISORS, supervisor_group_of
from .registry import operation

_PENDING = "hotline.escalations"  # Session.info key: (root transaction, {instance id: [requests]})
_DURATION = re.compile(r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
                       r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$")


@dataclass(frozen=True)
class Escalation:
    """One task.escalate call, to be applied to the instance's tasks when the step ends."""

    level: int | None  # None: one above the task's own level (and at least ``at_least``)
    at_least: int
    raise_priority: int
    reassign_group: str | None
    element: str | None
    mark_overdue: bool
    due: datetime | timedelta | None  # absolute, or counted from the moment it is applied
    carried_level: int = 0  # what the late tasks reached: the least a task opened later gets
    carried_priority: int | None = None
    # Spiff ids of the task whose SLA timer called this (context.late_tasks): only it is late,
    # not every open task of the element (each installment of an IOU has its own call). None: all.
    scope: frozenset[str] | None = None

    def level_for(self, current: int) -> int:
        if self.level is None:
            return max(current + 1, self.at_least)
        return max(current, self.level)

    def concerns(self, row: HumanTask, heir: bool = False) -> bool:
        """Whether the request escalates ``row``. ``heir``: the row was opened in this step while
        the late task itself is gone (an interrupting timer reopened it): it takes the late task's place."""
        if self.element is not None and row.element_id != self.element:
            return False
        return self.scope is None or heir or row.spiff_task_id in self.scope


# --- the operation ------------------------------------------------------------------------------

@operation("task.escalate")
def escalate(level: int | None = None, raise_priority: int = 1, reassign_group: str | None = None,
             element: str | None = None, mark_overdue: bool = True, due_in: Any = None,
             at_least: int | None = None, supervisors_of: str | None = None, *,
             _session: Session, _instance_id: int) -> dict[str, Any]:
    """Escalate the open tasks of this instance: level, priority, overdue flag, due time, group.

    ``level``: the level the tasks reach (never lowered); none given: one above each task's
    own level and at least ``at_least``. ``raise_priority`` is added to the priority.
    ``reassign_group`` (or ``supervisors_of``: the supervisor group of that group) takes the
    tasks from their group and from whoever holds them. ``element`` limits it to one BPMN
    element's tasks. ``due_in``: a new due time (ISO duration such as ``"PT2H"``, or a date and
    time such as what ``business_due(hours=4)`` gives). Returns ``{"level", "tasks", "ticket"}``: the
    level reached, the ids of the open tasks it found (a task the step reopens later is escalated
    too, but has no id yet), and the ticket's business key.
    """
    request = _request(_session, level, raise_priority, reassign_group, element, mark_overdue, due_in,
                       at_least, supervisors_of)
    request = replace(request, scope=context.late_tasks())
    rows = [r for r in active_tasks(_session, _instance_id) if request.concerns(r)]
    levels = [request.level_for(r.escalation_level) for r in rows]
    reached = max(levels, default=request.level_for(0))
    priority = max((r.priority + request.raise_priority for r in rows), default=None)
    request = replace(request, carried_level=reached, carried_priority=priority)
    _pending(_session).setdefault(_instance_id, []).append(request)
    ticket = _session.get(ProcessInstance, _instance_id)
    return {"level": reached, "tasks": [r.id for r in rows], "ticket": ticket.business_key if ticket else None}


def active_tasks(session: Session, instance_id: int) -> list[HumanTask]:
    return list(session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                        HumanTask.status.in_(TaskStatus.ACTIVE))
                                .order_by(HumanTask.id)))


def _supervisors_to_reassign_to(session: Session, group: str) -> str:
    """``group``'s supervisor group; where there is none, the duty supervisors (as notify.supervisors)."""
    named = supervisor_group_of(session, group)
    for candidate in (named, FALLBACK_SUPERVISORS):
        if session.scalar(select(Group.id).where(Group.name == candidate)) is not None:
            return candidate
    raise ValueError(f"task.escalate: nobody supervises group {group!r}: there is no group {named!r} "
                     f"(nor {FALLBACK_SUPERVISORS!r}) to hand its late tasks to")


# --- applying it when the step ends (called by the engine's sync) -------------------------------

def pending(session: Session, instance_id: int) -> bool:
    """Whether this transaction asked to escalate tasks of the instance (``settle`` applies it)."""
    return bool(_pending(session).get(instance_id))


def settle(session: Session, instance_id: int, active: Iterable[HumanTask], opened: Iterable[HumanTask],
           now: datetime, record: Callable[..., None]) -> list[int]:
    """Apply the escalations requested in this step to the instance's tasks; ids of those changed.

    ``active``: rows that were open before the step and still are; ``opened``: rows the step
    just created. ``record(kind, element_id, **detail)`` appends to the instance's history.
    """
    requests = _pending(session).pop(instance_id, None)
    if not requests:
        return []
    active, opened = list(active), list(opened)
    new_ids = {id(r) for r in opened}
    changed: list[int] = []
    for request in requests:
        late_still_open = request.scope is not None and any(r.spiff_task_id in request.scope for r in active)
        for row in active + opened:
            heir = id(row) in new_ids and not late_still_open
            if row.status in TaskStatus.ACTIVE and request.concerns(row, heir=heir):
                apply(row, request, now, record, reopened=id(row) in new_ids)
                if row.id not in changed:
                    changed.append(row.id)
    return changed


def apply(row: HumanTask, request: Escalation, now: datetime, record: Callable[..., None], *,
          reopened: bool = False) -> None:
    """Escalate one task row and record it (the one place the escalation columns are written)."""
    before = {"level": row.escalation_level, "priority": row.priority, "groups": list(row.candidate_groups),
              "due_at": row.due_at, "assignee": row.assignee, "overdue": row.overdue}
    level = request.level_for(row.escalation_level)
    priority = row.priority + request.raise_priority
    if reopened:  # the late task's successor keeps what the late task had reached
        level = max(level, request.carried_level)
        priority = max(priority, request.carried_priority if request.carried_priority is not None else priority)
    row.escalation_level, row.priority = level, priority
    if request.mark_overdue:
        row.overdue = True
    if request.due is not None:
        row.due_at = request.due if isinstance(request.due, datetime) else now + request.due
    released = None
    if request.reassign_group:
        row.offer_to([request.reassign_group], [])
        if row.status == TaskStatus.CLAIMED:
            released = row.assignee
            row.status, row.assignee, row.claimed_at, row.claimed_by = TaskStatus.OPEN, None, None, None
    record("task_escalated", row.element_id, task_id=row.id, title=row.title,
           level=level, previous_level=before["level"],
           priority=priority, previous_priority=before["priority"],
           groups=list(row.candidate_groups), previous_groups=before["groups"],
           due_at=_iso(row.due_at), previous_due_at=_iso(before["due_at"]),
           overdue=row.overdue, released_from=released)


# --- checking the request -----------------------------------------------------------------------

def _request(session: Session, level: Any, raise_priority: Any, reassign_group: Any, element: Any,
             mark_overdue: Any, due_in: Any, at_least: Any, supervisors_of: Any) -> Escalation:
    if level is not None:
        level = _whole(level, "level", minimum=1)
    at_least = 0 if at_least is None else _whole(at_least, "at_least", minimum=0)
    raise_priority = _whole(raise_priority, "raise_priority", minimum=0)
    if not isinstance(mark_overdue, bool):
        raise ValueError(f"task.escalate: mark_overdue must be true or false, not {mark_overdue!r}")
    if element is not None and (not isinstance(element, str) or not element.strip()):
        raise ValueError(f"task.escalate: element must be the id of a BPMN element, not {element!r}")
    if reassign_group is not None and supervisors_of is not None:
        raise ValueError("task.escalate: give reassign_group or supervisors_of, not both")
    if supervisors_of is not None:
        if not isinstance(supervisors_of, str) or not supervisors_of.strip():
            raise ValueError(f"task.escalate: supervisors_of must name a group, not {supervisors_of!r}")
        reassign_group = _supervisors_to_reassign_to(session, supervisors_of.strip())
    if reassign_group is not None:
        if not isinstance(reassign_group, str) or not reassign_group.strip():
            raise ValueError(f"task.escalate: reassign_group must name a group, not {reassign_group!r}")
        reassign_group = reassign_group.strip()
        if session.scalar(select(Group.id).where(Group.name == reassign_group)) is None:
            raise ValueError(f"task.escalate: there is no group {reassign_group!r} to reassign the late tasks to")
    return Escalation(level, at_least, raise_priority, reassign_group, element.strip() if element else None,
                      mark_overdue, parse_due(due_in))


def _whole(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"task.escalate: {name} must be a whole number of {minimum} or more, not {value!r}")
    return value


def parse_due(value: Any) -> datetime | timedelta | None:
    """A new due time: an ISO duration (``"PT2H"``, ``"P1DT4H"``), a timedelta, or an aware date and time."""
    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        return value
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        match = _DURATION.match(text.upper())
        if match and text.upper() not in ("P", "PT"):
            return timedelta(**{k: float(v) for k, v in match.groupdict().items() if v})
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"task.escalate: due_in {value!r} is neither an ISO duration (PT2H, P1DT4H; no months or "
                     "years) nor a date and time")


def _pending(session: Session) -> dict[int, list[Escalation]]:
    """This transaction's requests; what a rolled-back transaction left behind is dropped."""
    transaction = session.get_transaction()
    held = session.info.get(_PENDING)
    if held is None or held[0] is not transaction:
        held = (transaction, {})
        session.info[_PENDING] = held
    return held[1]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
