"""Messages a process throws to other processes: recorded in the step, delivered after it.

SpiffWorkflow hands a thrown message (intermediate or end message throw event) to every
catch event of the same workflow; when none catches it, it appends the event to
``workflow.bpmn_events`` (see ``EventManager.catch``) and leaves it there. ``record_thrown``
takes those message events in the step's transaction and writes them to the
``thrown_message`` outbox with the sender, the payload (the ``spiffworkflow:messagePayload``
expression's value) and the correlation values SpiffWorkflow computed from the message's
correlation properties; after the commit they are announced as ``("message", id)``.
A rolled-back step throws nothing. Delivery (``outbox.py``) correlates each one exactly
once, like ``engine.correlate``.
"""
from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition

from app.models.async_work import ThrownMessage
from app.services import context as service_context

from . import clock
from .async_tasks import encode
from .step import Step, StepError, jsonable


def flat_correlation(correlations: dict[str, dict]) -> dict[str, Any]:
    """SpiffWorkflow's {correlation key: {property: value}} as the {property: value} correlate takes."""
    flat: dict[str, Any] = {}
    for values in (correlations or {}).values():
        flat.update(values or {})
    return flat


def _throwing_element(step: Step, definition) -> str | None:
    for tasks in (step.workflow.tasks, *(sp.tasks for sp in step.workflow.subprocesses.values())):
        for task in tasks.values():
            if task.last_state_change >= step.started_ts and getattr(task.task_spec, "event_definition",
                                                                     None) is definition:
                return task.task_spec.bpmn_id
    return None


def record_thrown(step: Step) -> None:
    wf = step.workflow
    if not wf.bpmn_events:
        return
    kept, thrown = [], []
    for event in wf.bpmn_events:
        definition = event.event_definition
        if not isinstance(definition, MessageEventDefinition):
            kept.append(event)  # errors and signals nobody caught: SpiffWorkflow's business
            continue
        payload = event.payload
        if step.compiled.dialect.wraps_payload and isinstance(payload, dict):
            payload = payload.get("payload")
        element = _throwing_element(step, definition)
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise StepError(f"the payload of message '{definition.name}' must be a dict (a JSON object), "
                            f"got {type(payload).__name__}", element)
        keys = jsonable(flat_correlation(event.correlations))
        thrown.append(ThrownMessage(instance_id=step.instance.id, sender_business_key=step.instance.business_key,
                                    element_id=element, message_name=definition.name, correlation=keys,
                                    payload=encode(payload), created_at=clock.now(), attempts=0))
        step.record("message_sent", element, message=definition.name, keys=keys, payload=payload)
    wf.bpmn_events = kept
    if not thrown:
        return
    step.session.add_all(thrown)
    step.session.flush()
    for row in thrown:
        service_context.after_commit("message", row.id)
