"""One engine transaction: load, act, run until the process waits, sync, commit.

Every state change of an instance goes through ``run_on_instance`` (or ``start`` for a
new one): the instance row carries a lock version, so a concurrent change makes the
second writer fail with ``Conflict`` instead of overwriting. A failing script or
service rolls the whole transaction back and becomes an incident.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, undefer
from sqlalchemy.orm.exc import StaleDataError

from app.errors import Conflict, HotlineError, IllegalState, NotFound, StepFailed
from app.models import HumanTask, Incident, InstanceStatus, ProcessInstance, TaskStatus
from app.services import context as service_context

from . import clock, records, state
from .async_tasks import sync_service_jobs
from .incidents import record_incident, resolve
from .records import InstanceRecord
from .step import Step, StepError, ready_human_ids
from .sync import survey, sync_history, sync_human_tasks, sync_subscriptions, sync_timers
from .thrown_messages import record_thrown
from .timing import advance
from .transactions import after_commit, transaction_in

log = logging.getLogger("hotline.engine")

_SPIFF_ERROR_PREFIX = re.compile(r"^(\w+(?:Error|Exception|Warning)):(?=\S)")


def error_text(exc: BaseException) -> str:
    """The error as a person should read it: message, then SpiffWorkflow's notes."""
    message = str(exc.args[0]) if exc.args else ""
    if isinstance(exc, (SpiffWorkflowException, StepError)):
        # SpiffWorkflow writes a script's error as "ZeroDivisionError:division by zero"
        text = _SPIFF_ERROR_PREFIX.sub(r"\1: ", message) or type(exc).__name__
    else:  # a plain Python error from a service: its type says what went wrong (KeyError: 'agent')
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    notes = list(getattr(exc, "notes", None) or []) + list(getattr(exc, "__notes__", None) or [])
    for note in notes:
        if note and note not in text:
            text = f"{text.rstrip('. ')}. {note}"
    return text


def failing_element(exc: BaseException, workflow: BpmnWorkflow | None) -> str | None:
    if isinstance(exc, StepError):
        return exc.element_id
    task = getattr(exc, "task", None)
    spec = getattr(task, "task_spec", None) or getattr(exc, "task_spec", None)
    if spec is not None and (spec.bpmn_id or spec.name):
        return spec.bpmn_id or spec.name
    if workflow is not None:  # a step inside a call activity or sub-process fails in its own task tree
        for tree in (workflow, *workflow.subprocesses.values()):
            for t in tree.get_tasks(state=TaskState.ERROR):
                return t.task_spec.bpmn_id
    return None


def load_instance(session: Session, instance_id: int, lock: bool = False,
                  with_state: bool = False) -> ProcessInstance:
    """The instance row; ``lock`` holds it until commit, so concurrent engine calls on one
    instance run one after the other and the second sees what the first did."""
    # FOR NO KEY UPDATE: rows that only point at the instance (history, tasks) can still be written.
    instance = session.get(ProcessInstance, instance_id, populate_existing=lock,
                           with_for_update={"key_share": True} if lock else None,
                           options=[undefer(ProcessInstance.state)] if with_state else None)
    if instance is None:
        raise NotFound(f"instance {instance_id} does not exist")
    return instance


def check_active(instance: ProcessInstance | InstanceRecord, allow_suspended: bool = False) -> None:
    if instance.status in InstanceStatus.ENDED:
        raise IllegalState(f"instance {instance.business_key} has already {instance.status}")
    if instance.status == InstanceStatus.SUSPENDED and not allow_suspended:
        raise IllegalState(f"instance {instance.business_key} is suspended")


def flush_or_conflict(session: Session, instance: ProcessInstance) -> None:
    business_key = instance.business_key  # a failed flush expires the row: read it first
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict(f"instance {business_key} was changed by someone else; reload and try again") from exc


def finish(step: Step) -> None:
    """Sync the work tables and history with the workflow, serialize it, bump the lock version."""
    s, instance, wf = step.session, step.instance, step.workflow
    with s.no_autoflush:
        if step.compiled.has_messages:
            sync_subscriptions(step)  # first: taking a buffered message advances the workflow
        view = survey(wf, step.started_ts)
        if not wf.completed and instance.status not in InstanceStatus.ENDED:
            _check_not_stuck(view)
        sync_history(step, view)
        sync_human_tasks(step, view)
        if step.compiled.has_timers:
            sync_timers(step)
        sync_service_jobs(step)  # asynchronous service tasks waiting for a worker
        record_thrown(step)  # messages thrown to other processes: the outbox
    _link_customer(instance, wf)
    dumped = state.dump(step.compiled.dialect.serializer, wf)
    # Only an instance in error (or suspended, or being retried) can have open incidents.
    had_incidents = (step.loaded_status in (InstanceStatus.ERROR, InstanceStatus.SUSPENDED)
                     or step.resolve_incident_id is not None)
    if wf.completed and instance.status not in InstanceStatus.ENDED:
        instance.status, instance.ended_at = InstanceStatus.COMPLETED, clock.now()
        step.record("instance_completed")
    if had_incidents:
        _settle_incidents(step)
    elif instance.status == InstanceStatus.RUNNING:
        instance.status = InstanceStatus.WAITING
    records.save_instance(s, instance, dumped, clock.now(), step.events)
    step.events = []
    if s.new or s.dirty or s.deleted:
        s.flush()  # what services and the sync step added through the ORM: its errors belong to this step


def _link_customer(instance: InstanceRecord, wf: BpmnWorkflow) -> None:
    """A process that identified its caller (data ``customer_id``) files the ticket under them."""
    data = wf.data if wf.completed else (wf.last_task.data if wf.last_task is not None else {})
    customer_id = data.get("customer_id")
    if isinstance(customer_id, int) and not isinstance(customer_id, bool) and customer_id != instance.customer_id:
        instance.customer_id = customer_id


def _check_not_stuck(view) -> None:
    """A running process always has something ready, waiting or running; else it would
    stop silently. Such a stop is an incident a manager sees, not a quiet ticket."""
    if view.ready_engine:
        task = view.ready_engine[0]
        raise StepError("the engine could not run this step although it is ready", task.task_spec.bpmn_id)
    if not view.alive:
        raise StepError("the process has nothing left to do but did not reach an end event", None)


def _settle_incidents(step: Step) -> None:
    """Close the incidents this change settled, then derive the status from those left open.

    Settled: the one being retried; every one once the instance has ended; one about
    completing a task that is no longer open (someone completed it again, or the process
    moved past it). Only instances in status error (or being retried) can have open ones.
    """
    s, instance = step.session, step.instance
    still_open = False
    for incident in s.scalars(select(Incident).where(Incident.instance_id == instance.id,
                                                     Incident.status == "open")).all():
        settled = (incident.id == step.resolve_incident_id or instance.status in InstanceStatus.ENDED
                   or _task_moved_on(s, incident))
        if settled:
            resolve(incident, step.actor)
            step.record("incident_resolved", incident.element_id, incident_id=incident.id)
        still_open = still_open or not settled
    if instance.status in (InstanceStatus.RUNNING, InstanceStatus.WAITING, InstanceStatus.ERROR):
        instance.status = InstanceStatus.ERROR if still_open else InstanceStatus.WAITING


def _task_moved_on(s: Session, incident: Incident) -> bool:
    if incident.action.get("name") != "complete":
        return False
    row = s.get(HumanTask, incident.action.get("task_id"))
    return row is None or row.status not in TaskStatus.ACTIVE


def announce_timers(ctx, timers: list) -> None:
    """After a commit: tell ``ctx.on_timers_changed`` hooks (the worker wiring schedules a
    job per timer) about the timer rows the transaction wrote, as [(instance_id, due_at)].

    A failing hook never fails the committed change: the periodic sweep fires the timer anyway.
    """
    if not timers:
        return
    for hook in list(getattr(ctx, "on_timers_changed", ())):
        try:
            hook(list(timers))
        except Exception:  # noqa: BLE001 - Redis down, say; the sweep recovers what this missed
            log.exception("announcing %d timer(s) failed; the sweep will fire them", len(timers))


def announce_committed(ctx, announcements: list) -> None:
    """After a commit: hand what service operations announced (``context.after_commit``) to
    ``ctx.on_committed`` hooks. Like timers, a failing hook never fails the committed change."""
    if not announcements:
        return
    for hook in list(getattr(ctx, "on_committed", ())):
        try:
            hook(list(announcements))
        except Exception:  # noqa: BLE001 - each kind's sweep recovers what this missed
            log.exception("announcing %d committed item(s) failed; the sweeps will pick them up", len(announcements))


def committed(ctx, instance_id: int, lock_version: int, workflow: BpmnWorkflow, timers: list,
              announcements: list) -> None:
    """After an instance's change committed: keep its workflow warm, tell the workers."""
    ctx.live.put(instance_id, lock_version, workflow)
    announce_timers(ctx, timers)
    announce_committed(ctx, announcements)


def run_on_instance(ctx, instance: int | Callable[[Session], int | InstanceRecord], actor: str,
                    action: Callable[[Step], Any], *, incident_action: dict | None, allow_suspended: bool = False,
                    resolve_incident_id: int | None = None, run_engine: bool = True,
                    session: Session | None = None, after: list | None = None) -> Any:
    """Apply ``action`` to an instance, run the engine, commit; or change nothing.

    ``instance`` is an id, or a function that finds it (and checks the caller may act)
    inside the same transaction and returns its id, or its record locked already
    (``records.task_to_complete``). With ``session``: a savepoint in that transaction, and
    the after-commit work goes to ``after`` (see transactions.py).
    """
    process_key = None
    workflow = None
    instance_id = instance if isinstance(instance, int) else None
    try:
        with transaction_in(ctx, session) as s:
            found = instance(s) if instance_id is None else instance_id
            if isinstance(found, InstanceRecord):  # the finder read and locked it already
                row, stored, instance_id = found, None, found.id
            else:
                instance_id = found
                row, stored = records.lock_instance(s, instance_id, with_state=not ctx.live.holds(instance_id))
            check_active(row, allow_suspended)
            compiled = ctx.specs.get(s, row.version_id)
            process_key = compiled.key
            workflow, kept = ctx.live.take(instance_id, row.lock_version)
            if workflow is None:
                if stored is None:  # the cache held an older version: read the state after all
                    stored = records.instance_state(s, instance_id)
                workflow = compiled.load(stored, kept)
            step = Step(s, row, compiled, workflow, actor, resolve_incident_id=resolve_incident_id,
                        loaded_status=row.status, ready_before=ready_human_ids(workflow))
            with service_context.bound(s, instance_id) as bound_step:  # service tasks write in this transaction
                result = action(step)
                if run_engine:
                    advance(workflow)
                finish(step)
        after_commit(after, lambda: committed(ctx, instance_id, row.lock_version, workflow, step.timers_set,
                                              bound_step.announcements))
        return result
    except HotlineError:
        raise
    except Exception as exc:  # a script, condition or service failed: roll back, record
        if isinstance(exc, SQLAlchemyError) or incident_action is None or instance_id is None:
            raise
        element = failing_element(exc, workflow)
        incident_id = record_incident(ctx, instance_id, process_key or "?", element, error_text(exc),
                                      incident_action, actor, session=session)
        raise StepFailed(f"step {element or '?'} failed: {error_text(exc)}", element, incident_id) from exc
