"""Keep the tables people and workers read in step with the workflow, in its transaction.

``human_task`` (the inboxes), ``timer`` (what is due when), ``message_subscription``
(what waits for which message) and the ``instance_event`` history are derived from
the workflow after every engine transaction; nothing else writes them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import delete, select

from app.models import BufferedMessage, HumanTask, MessageSubscription, TaskStatus, Timer
from app.services import escalation

from . import clock, records
from .correlation import canonical, deliver, expected_correlation, matches
from .step import Step, StepError
from .timing import advance, message_definitions, timer_due, waiting_catch_tasks

_HISTORY_STATES = {TaskState.COMPLETED: "step_completed", TaskState.CANCELLED: "step_cancelled",
                   TaskState.WAITING: "step_waiting", TaskState.ERROR: "step_failed"}
_MAX_BUFFERED_ROUNDS = 20
_ALIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED


@dataclass
class WorkflowView:
    """What the sync step needs from the workflow, gathered in one pass over its tasks."""

    changed: list = field(default_factory=list)  # state changed in this transaction
    ready_human: list = field(default_factory=list)
    ready_engine: list = field(default_factory=list)  # after advance(): a step the engine did not run
    alive: bool = False  # something is ready, waiting or running


def survey(workflow, since: float) -> WorkflowView:
    view = WorkflowView()
    for tasks in (workflow.tasks, *(sp.tasks for sp in workflow.subprocesses.values())):
        for task in tasks.values():
            state = task.state
            if task.last_state_change >= since:
                view.changed.append(task)
            if state == TaskState.READY:
                (view.ready_human if task.task_spec.manual else view.ready_engine).append(task)
            if state & _ALIVE:
                view.alive = True
    # In the order the steps happened: a call activity's own steps before the call activity
    # itself completes, whatever the order of SpiffWorkflow's task dictionaries.
    view.changed.sort(key=lambda task: task.last_state_change)
    return view


def sync_history(step: Step, view: WorkflowView) -> None:
    """Record every BPMN step whose state changed in this transaction."""
    for task in view.changed:
        bpmn_id = task.task_spec.bpmn_id
        kind = _HISTORY_STATES.get(task.state)
        if bpmn_id is None or kind is None or task.task_spec.manual:
            continue  # human tasks have their own task_* events (created, completed, cancelled)
        step.record(kind, bpmn_id, name=step.compiled.element(bpmn_id).get("name") or bpmn_id)


# --- human tasks -----------------------------------------------------------------

def _evaluate(step: Step, task, element_id: str, what: str, value: str) -> Any:
    if not value.startswith("="):
        return value
    try:
        return step.compiled.script_engine.environment.evaluate(value[1:], dict(task.data))
    except Exception as exc:
        raise StepError(f"{what} expression {value!r} failed: {exc}", element_id) from exc


def _due_at(step: Step, task, element_id: str, value: str | None) -> datetime | None:
    if not value:
        return None
    raw = _evaluate(step, task, element_id, "due date", value)
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=clock.now().tzinfo)
    if isinstance(raw, timedelta):
        return clock.now() + raw
    text = str(raw).strip()
    try:
        if text.upper().startswith("P"):
            parsed = TimerEventDefinition.parse_iso_duration(text)
            return clock.now() + TimerEventDefinition.get_timedelta_from_start(parsed, clock.now())
        return TimerEventDefinition.get_datetime(text)
    except Exception as exc:
        raise StepError(f"due date {text!r} is neither an ISO date nor an ISO duration", element_id) from exc


def _priority(step: Step, task, element_id: str, value: str | None, default: int) -> int:
    if not value:
        return default
    raw = _evaluate(step, task, element_id, "priority", value)
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise StepError(f"priority {raw!r} is not a whole number", element_id) from exc


def _names(step: Step, task, element_id: str, what: str, values: list[str] | None) -> list[str]:
    """Group or user names; an ``=expression`` (``=department``) gives one name or a list of them,
    so one task can go to the department a routing table chose."""
    names: list[str] = []
    for value in values or []:
        raw = _evaluate(step, task, element_id, what, value)
        items = raw if isinstance(raw, (list, tuple)) else [raw]
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise StepError(f"{what} expression {value!r} gave {raw!r}; it must give a name or a list of "
                                "names", element_id)
            names.append(item.strip())
    return list(dict.fromkeys(names))


def _new_human_task(step: Step, task) -> dict:
    """The ``human_task`` row (with its ``candidates``) for a user task that became ready."""
    element_id = task.task_spec.bpmn_id
    info = step.compiled.element(element_id)
    assignee = info.get("assignee")
    if assignee:
        assignee = _evaluate(step, task, element_id, "assignee", assignee) or None
    groups = _names(step, task, element_id, "candidate groups", info.get("candidate_groups"))
    users = _names(step, task, element_id, "candidate users", info.get("candidate_users"))
    if not groups and not users and (info.get("candidate_groups") or info.get("candidate_users")):
        # An empty list from the data would make the task everyone's: say so instead.
        raise StepError("the candidate groups and users of this task came out empty: nobody could work on it",
                        element_id)
    now = clock.now()
    return {
        "instance_id": step.instance.id,
        "spiff_task_id": str(task.id),
        "element_id": element_id,
        "title": (info.get("name") or task.task_spec.bpmn_name or element_id)[:300],
        "candidate_groups": groups,
        "candidate_users": users,
        "assignee": str(assignee) if assignee else None,
        "status": TaskStatus.CLAIMED if assignee else TaskStatus.OPEN,
        "form_key": info.get("form_key"),
        "priority": _priority(step, task, element_id, info.get("priority"), step.instance.priority),
        "due_at": _due_at(step, task, element_id, info.get("due")),
        "created_at": now,
        "claimed_at": now if assignee else None,
        "claimed_by": "system" if assignee else None,
        "escalation_level": 0,
        "overdue": False,
        "candidates": HumanTask.candidate_keys(groups, users),
    }


def sync_human_tasks(step: Step, view: WorkflowView) -> None:
    """Open a row for every user task that became ready, cancel the rows of those that went away."""
    s = step.session
    ready = {str(t.id): t for t in view.ready_human}
    if step.is_new:
        known, gone = set(), []
    elif step.ready_before is not None and step.ready_before <= ready.keys() | step.finished:
        known, gone = step.ready_before - step.finished, []  # nothing went away: no need to read the rows
    else:
        active = records.active_tasks(s, step.instance.id)
        known = {row.spiff_task_id for row in active}
        gone = [row for row in active if row.spiff_task_id not in ready]
    if gone:
        records.cancel_tasks(s, [row.id for row in gone])
        for row in gone:
            step.record("task_cancelled", row.element_id, task_id=row.id, title=row.title)
    new_rows = [_new_human_task(step, task) for spiff_id, task in ready.items() if spiff_id not in known]
    new_ids = records.insert_tasks(s, new_rows) if new_rows else []
    for task_id, row in zip(new_ids, new_rows, strict=True):
        step.record("task_created", row["element_id"], task_id=task_id, title=row["title"],
                    groups=row["candidate_groups"], assignee=row["assignee"])
    if escalation.pending(s, step.instance.id):
        # task.escalate calls of this step apply now that the step's tasks are known (see escalation.py)
        rows = s.scalars(select(HumanTask).where(HumanTask.instance_id == step.instance.id,
                                                 HumanTask.status.in_(TaskStatus.ACTIVE))
                         .order_by(HumanTask.id).execution_options(populate_existing=True)).all()
        opened = set(new_ids)
        escalation.settle(s, step.instance.id, [r for r in rows if r.id not in opened],
                          [r for r in rows if r.id in opened], clock.now(), step.record)


# --- timers --------------------------------------------------------------------

def sync_timers(step: Step) -> None:
    s = step.session
    want: dict[str, tuple[str, datetime]] = {}
    for task in waiting_catch_tasks(step.workflow):
        due = timer_due(task)
        if due is not None:
            want[str(task.id)] = (task.task_spec.bpmn_id, due)
    existing = [] if step.is_new else s.scalars(select(Timer).where(Timer.instance_id == step.instance.id)).all()
    for row in existing:
        wanted = want.get(row.spiff_task_id)
        if wanted is None or wanted[1] != row.due_at:
            s.delete(row)
        else:
            del want[row.spiff_task_id]
    for spiff_id, (element_id, due) in want.items():
        s.add(Timer(instance_id=step.instance.id, spiff_task_id=spiff_id, element_id=element_id, due_at=due))
        step.timers_set.append((step.instance.id, due))


# --- message subscriptions -----------------------------------------------------

def _wanted_subscriptions(step: Step) -> dict[tuple[str, str], tuple[Any, dict, dict]]:
    want = {}
    for task in waiting_catch_tasks(step.workflow):
        if isinstance(task.task_spec, StartEvent):
            # A message start event starts new instances (message_start table); an instance
            # started another way must not take the next caller's message for itself.
            continue
        for definition in message_definitions(task.task_spec.event_definition):
            expected, retrieval = expected_correlation(task, definition)
            want[(str(task.id), definition.name)] = (task, expected, retrieval)
    return want


def sync_subscriptions(step: Step) -> None:
    """Sync subscriptions; a new one first looks for a buffered message it can take."""
    s = step.session
    for _ in range(_MAX_BUFFERED_ROUNDS):
        want = _wanted_subscriptions(step)
        rows = [] if step.is_new else s.scalars(select(MessageSubscription).where(
            MessageSubscription.instance_id == step.instance.id)).all()
        existing = {(r.spiff_task_id, r.message_name): r for r in rows}
        new = [k for k in want if k not in existing]
        if new and _take_buffered(step, [(k, want[k]) for k in new]):
            advance(step.workflow)
            continue
        for key, row in existing.items():
            if key not in want:
                s.delete(row)
            else:
                _, expected, retrieval = want[key]
                if row.correlation_key != canonical(expected):
                    row.correlation, row.correlation_key = expected, canonical(expected)
                    row.retrieval = retrieval
        for key in new:
            task, expected, retrieval = want[key]
            s.add(MessageSubscription(instance_id=step.instance.id, spiff_task_id=key[0],
                                      element_id=task.task_spec.bpmn_id, message_name=key[1],
                                      correlation=expected, correlation_key=canonical(expected),
                                      retrieval=retrieval))
        return
    raise StepError("buffered messages kept restarting the process; stopped after "
                    f"{_MAX_BUFFERED_ROUNDS} rounds", None)


def _take_buffered(step: Step, new) -> bool:
    s = step.session
    names = {key[1] for key, _ in new}
    buffered = s.scalars(select(BufferedMessage).where(BufferedMessage.message_name.in_(names),
                                                       BufferedMessage.expires_at > clock.now())
                         .order_by(BufferedMessage.id)).all()
    for message in buffered:
        for (spiff_id, name), (task, expected, retrieval) in new:
            if name != message.message_name or not matches(expected, retrieval, message.correlation,
                                                           message.payload):
                continue
            taken = s.execute(delete(BufferedMessage).where(BufferedMessage.id == message.id))
            if taken.rowcount != 1:
                break  # another instance took it first
            if deliver(step, spiff_id, name, message.correlation, message.payload):
                return True
            raise StepError(f"buffered message {name!r} matched but was refused", task.task_spec.bpmn_id)
    return False
