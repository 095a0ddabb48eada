"""Start, suspend, resume and terminate process instances."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.errors import Conflict, HotlineError, IllegalState, InvalidInput, NotFound, StepFailed
from app.models import Incident, InstanceEvent, InstanceStatus, ProcessInstance, ProcessModel
from app.services import context as service_context

from . import clock, records
from .business_keys import insert_numbered_instance, next_business_key
from .correlation import deliver
from .incidents import record_incident
from .runtime import (
    committed,
    error_text,
    failing_element,
    finish,
    flush_or_conflict,
    load_instance,
    run_on_instance,
)
from .step import Step
from .timer_starts import fire_timer_start
from .timing import advance, message_definitions, waiting_catch_tasks
from .transactions import after_commit, transaction_in

TICKET_VARIABLE = "business_key"  # the process variable holding the instance's business key
_MODEL = ProcessModel.__table__
_LATEST = select(_MODEL.c.latest_version_id, _MODEL.c.title, _MODEL.c.business_key_prefix).where(
    _MODEL.c.key == bindparam("b_key"))


def require_data(data: Any, what: str = "data") -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def start(ctx, key: str, data: dict | None = None, actor: str = "system", *, business_key: str | None = None,
          title: str | None = None, priority: int | None = None, start_message: dict | None = None,
          timer_start: str | None = None, claim: Callable[[Session], Callable[[Step], None]] | None = None,
          session: Session | None = None, after: list | None = None) -> int:
    """Start the latest version of process ``key``; returns the new instance id.

    ``start_message`` ({"name", "keys", "payload"}) is delivered to the message start
    event in the same transaction, for instances that a message starts.
    ``timer_start``: the timer start event that fired (schedules); a process whose only starts
    are timer starts fires its first one when started by hand. ``claim`` runs first in the
    transaction (a schedule locks its row there; raising changes nothing); what it returns is
    called with the new instance's step before the commit.
    """
    data = require_data(data)
    if TICKET_VARIABLE in data:
        raise InvalidInput(f"'{TICKET_VARIABLE}' is the ticket's number, which Hotline gives; leave it out of the "
                           "start data")
    workflow = None
    try:
        with transaction_in(ctx, session) as s:  # session: a savepoint in the caller's transaction
            on_started = claim(s) if claim is not None else None
            now = clock.now()
            priority = 50 if priority is None else int(priority)
            instance = None if business_key else insert_numbered_instance(  # the usual case: one statement
                s, key, title=title, status=InstanceStatus.RUNNING, priority=priority, started_by=actor, now=now)
            if instance is not None:
                business_key, version_id = instance.business_key, instance.version_id
            else:
                model = s.execute(_LATEST, {"b_key": key}).first()
                if model is None or model.latest_version_id is None:
                    raise NotFound(f"no process '{key}' is deployed")
                if business_key and s.scalar(select(ProcessInstance.id).where(
                        ProcessInstance.business_key == business_key)):
                    raise Conflict(f"business key {business_key} is already used by another instance")
                version_id = model.latest_version_id
                business_key = business_key or next_business_key(s, model.business_key_prefix)
                instance = records.insert_instance(
                    s, version_id=version_id, business_key=business_key,
                    title=(title or model.title or key)[:300], status=InstanceStatus.RUNNING, state="",
                    priority=priority, started_by=actor, started_at=now, updated_at=now)
            compiled = ctx.specs.get(s, version_id)
            workflow = compiled.new_workflow()
            if compiled.has_timers or timer_start is not None:  # else no timer start event to fire
                fire_timer_start(workflow, timer_start, by_default=start_message is None)
            for task in workflow.get_tasks(state=TaskState.READY):
                # The ticket's own number is process data (``business_key``): messages, SMS texts and
                # surveys name it. Start data cannot overwrite it.
                task.set_data(**{**data, TICKET_VARIABLE: business_key})
            step = Step(s, instance, compiled, workflow, actor, is_new=True)
            step.record("instance_started", data=data, process=key, version=compiled.version_id)
            if on_started is not None:
                on_started(step)
            with service_context.bound(s, instance.id) as bound_step:  # service tasks write in this transaction
                advance(workflow)
                if start_message is not None:
                    _deliver_start_message(step, start_message)
                    advance(workflow)
                else:
                    _refuse_if_still_at_start(key, workflow)
                finish(step)
        after_commit(after, lambda: committed(ctx, instance.id, instance.lock_version, workflow, step.timers_set,
                                              bound_step.announcements))
        return instance.id
    except HotlineError:
        raise
    except SQLAlchemyError:
        raise
    except Exception as exc:
        element = failing_element(exc, workflow)
        action = {"name": "start", "key": key, "data": data, "actor": actor, "start_message": start_message}
        incident_id = record_incident(ctx, None, key, element, error_text(exc), action, actor, session=session)
        raise StepFailed(f"starting '{key}' failed at {element or '?'}: {error_text(exc)}", element,
                         incident_id) from exc


def _refuse_if_still_at_start(key: str, workflow) -> None:
    """Started by hand, a process that only starts on a message (or on a condition the data
    does not meet) would wait at its start for ever: say so instead of making a dead ticket."""
    waiting = waiting_catch_tasks(workflow)
    if not waiting or not all(isinstance(t.task_spec, StartEvent) for t in waiting):
        return
    if workflow.get_tasks(state=TaskState.READY, manual=True):
        return
    messages = sorted({d.name for t in waiting for d in message_definitions(t.task_spec.event_definition)})
    how = f"when the message {', '.join(messages)} arrives (send it)" if messages else "on a condition"
    raise IllegalState(f"process {key} starts {how}; started by hand its start data must meet the "
                       f"condition of a start event ({', '.join(t.task_spec.bpmn_id for t in waiting)})")


def _deliver_start_message(step: Step, message: dict) -> None:
    for task in waiting_catch_tasks(step.workflow):
        names = {d.name for d in message_definitions(task.task_spec.event_definition)}
        if message["name"] in names:
            if deliver(step, str(task.id), message["name"], message.get("keys") or {},
                       message.get("payload") or {}, origin=message.get("origin")):
                return
    raise IllegalState(f"process {step.compiled.key} does not start on message '{message['name']}'")


def suspend(ctx, instance_id: int, actor: str, reason: str = "") -> None:
    with ctx.db.transaction() as s:
        instance = load_instance(s, instance_id, lock=True)
        if instance.status in InstanceStatus.ENDED:
            raise IllegalState(f"instance {instance.business_key} has already {instance.status}")
        if instance.status == InstanceStatus.SUSPENDED:
            raise IllegalState(f"instance {instance.business_key} is already suspended")
        instance.status = InstanceStatus.SUSPENDED
        instance.updated_at = clock.now()
        _event(s, instance, "instance_suspended", actor, reason=reason)
        flush_or_conflict(s, instance)


def resume(ctx, instance_id: int, actor: str) -> None:
    with ctx.db.transaction() as s:
        instance = load_instance(s, instance_id, lock=True)
        if instance.status != InstanceStatus.SUSPENDED:
            raise IllegalState(f"instance {instance.business_key} is not suspended")
        has_incident = s.scalar(select(Incident.id).where(Incident.instance_id == instance_id,
                                                          Incident.status == "open").limit(1))
        instance.status = InstanceStatus.ERROR if has_incident else InstanceStatus.WAITING
        instance.updated_at = clock.now()
        _event(s, instance, "instance_resumed", actor)
        flush_or_conflict(s, instance)


def terminate(ctx, instance_id: int, actor: str, reason: str = "") -> None:
    """End an instance now. The sync step cancels its tasks and drops its timers and subscriptions."""

    def action(step: Step) -> None:
        step.workflow.cancel()
        step.instance.status = InstanceStatus.TERMINATED
        step.instance.ended_at = clock.now()
        step.record("instance_terminated", reason=reason)
        # finish() resolves its open incidents: an ended instance has nothing left to retry

    run_on_instance(ctx, instance_id, actor, action, incident_action=None, allow_suspended=True,
                    run_engine=False)


def _event(s, instance: ProcessInstance, kind: str, actor: str, **detail) -> None:
    s.add(InstanceEvent(instance_id=instance.id, at=clock.now(), kind=kind, actor=actor, detail=detail))
