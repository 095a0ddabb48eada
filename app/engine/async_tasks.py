"""Asynchronous service tasks inside the engine transaction.

A service task marked asynchronous (``async_marking.py``) evaluates its parameters in the
engine step and stays STARTED, so the instance waits there. ``sync_service_jobs`` keeps one
``service_job`` row per such waiting task, in the step's transaction (like timers): a new
waiting task gets a row (announced after the commit as ``("service_job", (id, run_at))``),
a task that is no longer waiting (completed, or cancelled by an interrupting boundary
event, or a terminated instance) loses its row. The worker side is ``async_runner.py``.
"""
from __future__ import annotations

from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.spiff.specs.event_definitions import SpiffItemAwareEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from app.models.async_work import ServiceJob, ServiceJobStatus
from app.services import context as service_context

from . import clock
from .async_marking import PARAMS_KEY, AsyncServiceTask
from .dialects import DIALECTS, SPIFF
from .step import Step, StepError

ERROR_VARIABLE = "service_error"  # where a failed asynchronous task's error lands in the process data
_REGISTRY = DIALECTS[SPIFF].serializer.registry  # Decimal, date and datetime survive JSON


def encode(value: Any) -> Any:
    """A value as JSON the database can store, Decimals and dates intact (``decode`` reverses it)."""
    return _REGISTRY.convert(value)


def decode(value: Any) -> Any:
    return _REGISTRY.restore(value)


def has_async_tasks(compiled) -> bool:
    found = getattr(compiled, "_hotline_has_async", None)
    if found is None:
        specs = [compiled.spec, *compiled.subprocess_specs.values()]
        found = any(isinstance(ts, AsyncServiceTask) for s in specs if s is not None for ts in s.task_specs.values())
        compiled._hotline_has_async = found
    return found


def waiting_service_tasks(workflow) -> list:
    found = []
    for tasks in (workflow.tasks, *(sp.tasks for sp in workflow.subprocesses.values())):
        found.extend(t for t in tasks.values()
                     if t.state == TaskState.STARTED and isinstance(t.task_spec, AsyncServiceTask))
    return found


def sync_service_jobs(step: Step) -> None:
    if not has_async_tasks(step.compiled):
        return
    s = step.session
    want = {str(t.id): t for t in waiting_service_tasks(step.workflow)}
    existing = [] if step.is_new else s.scalars(select(ServiceJob).where(
        ServiceJob.instance_id == step.instance.id)).all()
    for row in existing:
        if row.spiff_task_id in want:
            del want[row.spiff_task_id]
            continue
        task = step.workflow.get_task_from_id(UUID(row.spiff_task_id))
        if task is None or task.state != TaskState.COMPLETED:
            step.record("service_job_cancelled", row.element_id, job_id=row.id, operation=row.operation)
        s.delete(row)
    if not want:
        return
    now = clock.now()
    new_rows = []
    for spiff_id, task in want.items():
        spec = task.task_spec
        marking = spec.async_marking
        new_rows.append(ServiceJob(
            instance_id=step.instance.id, spiff_task_id=spiff_id, element_id=spec.bpmn_id,
            operation=spec.operation_name, params=encode(task.internal_data.get(PARAMS_KEY) or {}),
            max_attempts=marking.max_attempts, backoff_seconds=marking.backoff.total_seconds(),
            attempts=0, next_attempt_at=now, status=ServiceJobStatus.PENDING, created_at=now, updated_at=now))
    s.add_all(new_rows)
    s.flush()  # the announcement and the history name the rows' ids
    for row in new_rows:
        step.record("service_job_queued", row.element_id, job_id=row.id, operation=row.operation)
        service_context.after_commit("service_job", (row.id, row.next_attempt_at))


def waiting_task(step: Step, job: ServiceJob):
    """The Spiff task a job belongs to while it still waits there, else None."""
    task = step.workflow.get_task_from_id(UUID(job.spiff_task_id))
    if task is None or task.state != TaskState.STARTED or not isinstance(task.task_spec, AsyncServiceTask):
        return None
    return task


def complete_with_result(step: Step, job: ServiceJob, result: Any) -> bool:
    """Finish the waiting task with the operation's result (stored like a synchronous task's)."""
    task = waiting_task(step, job)
    if task is None:
        return False
    task.data[task.task_spec.result_variable] = result
    task.complete()
    step.record("service_job_completed", job.element_id, job_id=job.id, operation=job.operation,
                attempts=job.attempts)
    return True


def error_boundary(task, code: str | None):
    """The waiting error boundary event of ``task`` that catches ``code``: same code first, else catch-all."""
    parent = task.parent
    if parent is None or not isinstance(parent.task_spec, BoundaryEventSplit):
        return None
    boundaries = [c for c in parent.children if isinstance(c.task_spec, BoundaryEvent) and c.state == TaskState.WAITING
                  and isinstance(c.task_spec.event_definition, ErrorEventDefinition)]
    exact = [b for b in boundaries if code is not None and b.task_spec.event_definition.code == code]
    catch_all = [b for b in boundaries if b.task_spec.event_definition.code is None]
    return (exact or catch_all or [None])[0]


def throw_error(step: Step, job: ServiceJob, error: dict) -> str | None:
    """Throw the failure to the task's error boundary event; returns its element id, or None
    when the diagram has none that catches it (the caller makes an incident)."""
    task = waiting_task(step, job)
    if task is None:
        return None
    boundary = error_boundary(task, error.get("code"))
    if boundary is None:
        return None
    definition = boundary.task_spec.event_definition
    # Spiff error events put the payload in their variableName; plain ones merge a dict into the data.
    payload = error if isinstance(definition, SpiffItemAwareEventDefinition) else {ERROR_VARIABLE: error}
    boundary.task_spec.catch(boundary, BpmnEvent(definition, payload=payload))
    boundary.task_spec._update(boundary)
    boundary.data[ERROR_VARIABLE] = error
    step.record("service_job_failed", job.element_id, job_id=job.id, operation=job.operation,
                error=error.get("message"), code=error.get("code"), boundary=boundary.task_spec.bpmn_id)
    return boundary.task_spec.bpmn_id


class ServiceTaskFailed(StepError):
    """An asynchronous service task failed for good and no error boundary event catches it."""
