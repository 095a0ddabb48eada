"""One engine transaction: load, act, run until the process waits, sync, commit.

Every state change of an instance goes through ``run_on_instance`` (or ``start`` for a
new one): the instance row carries a lock version, so a concurrent change makes the
second writer fail with ``Conflict`` instead of overwriting. A failing script or
service rolls the whole transaction back and becomes an incident.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.errors import Conflict, HotlineError, IllegalState, NotFound, StepFailed
from app.models import Incident, InstanceStatus, ProcessInstance

from . import clock, state
from .incidents import record_incident
from .step import Step, StepError
from .sync import sync_history, sync_human_tasks, sync_subscriptions, sync_timers
from .timing import advance


def error_text(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", None) or getattr(exc, "notes", None) or []
    text = str(exc) or type(exc).__name__
    for note in notes:
        if note and note not in text:
            text += f" {note}"
    return text


def failing_element(exc: BaseException, workflow: BpmnWorkflow | None) -> str | None:
    if isinstance(exc, StepError):
        return exc.element_id
    task = getattr(exc, "task", None)
    if task is not None and getattr(task, "task_spec", None) is not None:
        return task.task_spec.bpmn_id or task.task_spec.name
    if workflow is not None:
        for t in workflow.get_tasks(state=TaskState.ERROR):
            return t.task_spec.bpmn_id
    return None


def load_instance(session: Session, instance_id: int) -> ProcessInstance:
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"instance {instance_id} does not exist")
    return instance


def check_active(instance: ProcessInstance, allow_suspended: bool = False) -> None:
    if instance.status in InstanceStatus.ENDED:
        raise IllegalState(f"instance {instance.business_key} has already {instance.status}")
    if instance.status == InstanceStatus.SUSPENDED and not allow_suspended:
        raise IllegalState(f"instance {instance.business_key} is suspended")


def finish(step: Step) -> None:
    """Serialize, sync the work tables and history, bump the lock version."""
    s, instance, wf = step.session, step.instance, step.workflow
    sync_history(step)
    sync_subscriptions(step)  # may deliver buffered messages, which advances the workflow
    sync_human_tasks(step)
    sync_timers(step)
    instance.state = state.dump(step.compiled.dialect.serializer, wf)
    instance.updated_at = clock.now()
    if step.resolve_incident_id is not None:
        incident = s.get(Incident, step.resolve_incident_id)
        if incident is not None and incident.status == "open":
            incident.status, incident.resolved_at, incident.resolved_by = "resolved", clock.now(), step.actor
            step.record("incident_resolved", incident.element_id, incident_id=incident.id)
    if wf.completed and instance.status not in InstanceStatus.ENDED:
        instance.status, instance.ended_at = InstanceStatus.COMPLETED, clock.now()
        for incident in s.scalars(select(Incident).where(Incident.instance_id == instance.id,
                                                         Incident.status == "open")):
            incident.status, incident.resolved_at, incident.resolved_by = "resolved", clock.now(), step.actor
        step.record("instance_completed")
    elif instance.status in (InstanceStatus.RUNNING, InstanceStatus.WAITING, InstanceStatus.ERROR):
        open_incident = s.scalar(select(Incident.id).where(Incident.instance_id == instance.id,
                                                           Incident.status == "open").limit(1))
        instance.status = InstanceStatus.ERROR if open_incident else InstanceStatus.WAITING
    s.add_all(step.events)
    step.events = []
    try:
        s.flush()
    except StaleDataError as exc:
        raise Conflict(f"instance {instance.business_key} was changed by someone else; reload and try again") \
            from exc


def run_on_instance(ctx, instance_id: int, actor: str, action: Callable[[Step], Any], *,
                    incident_action: dict | None, allow_suspended: bool = False,
                    resolve_incident_id: int | None = None, run_engine: bool = True) -> Any:
    """Load instance ``instance_id``, apply ``action``, run the engine, commit; or nothing."""
    process_key = None
    workflow = None
    try:
        with ctx.db.transaction() as s:
            instance = load_instance(s, instance_id)
            check_active(instance, allow_suspended)
            compiled = ctx.specs.get(s, instance.version_id)
            process_key = compiled.key
            workflow = state.load(compiled.dialect.serializer, instance.state, compiled.spec,
                                  compiled.subprocess_specs, compiled.script_engine)
            step = Step(s, instance, compiled, workflow, actor, resolve_incident_id=resolve_incident_id)
            result = action(step)
            if run_engine:
                advance(workflow)
            finish(step)
            return result
    except HotlineError:
        raise
    except Exception as exc:  # a script, condition or service failed: roll back, record
        if isinstance(exc, SQLAlchemyError) or incident_action is None:
            raise
        element = failing_element(exc, workflow)
        incident_id = record_incident(ctx, instance_id, process_key or "?", element, error_text(exc),
                                      incident_action, actor)
        raise StepFailed(f"step {element or '?'} failed: {error_text(exc)}", element, incident_id) from exc

