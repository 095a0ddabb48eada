"""Message correlation: which waiting catch event a message from outside belongs to.

A subscription stores the correlation values its instance expects ({property: value},
empty when any message of the name will do) and the retrieval expression of each
property, so a message can be matched without loading the instance: a property's value
comes from the sender's keys, or else from the payload through that expression.
"""
from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.util.task import TaskState

from .scripting import SCRIPT_ENGINE
from .step import Step
from .timing import message_definitions


def canonical(correlation: dict[str, Any]) -> str:
    return json.dumps(correlation, sort_keys=True, default=str) if correlation else ""


def expected_correlation(task, definition: MessageEventDefinition) -> tuple[dict, dict]:
    """({property: expected value}, {property: retrieval expression}) of a waiting catch event."""
    known = task.workflow.correlations or {}
    expected, retrieval = {}, {}
    for prop in definition.correlation_properties:
        retrieval[prop.name] = prop.retrieval_expression
        for key in prop.correlation_keys:
            if prop.name in known.get(key, {}):
                expected[prop.name] = known[key][prop.name]
    return expected, retrieval


def property_value(name: str, expression: str | None, keys: dict, payload: dict) -> tuple[bool, Any]:
    if name in keys:
        return True, keys[name]
    if expression:
        try:
            return True, SCRIPT_ENGINE.environment.evaluate(expression, dict(payload))
        except Exception:  # the payload lacks what the expression reads: no value
            return False, None
    return False, None


def matches(expected: dict, retrieval: dict, keys: dict, payload: dict) -> bool:
    for name, value in expected.items():
        found, actual = property_value(name, retrieval.get(name), keys, payload)
        if not found or actual != value:
            return False
    return True


def event_correlations(definition: MessageEventDefinition, keys: dict, payload: dict) -> dict:
    """Correlations in SpiffWorkflow's shape: {key name: {property: value}}."""
    result: dict[str, dict] = {}
    for prop in definition.correlation_properties:
        found, value = property_value(prop.name, prop.retrieval_expression, keys, payload)
        if not found:
            continue
        for key in prop.correlation_keys:
            result.setdefault(key, {})[prop.name] = value
    return result


def deliver(step: Step, spiff_task_id: str, name: str, keys: dict, payload: dict, origin: dict | None = None) -> bool:
    """Hand a message to one waiting catch event; False when it no longer waits for it."""
    wf = step.workflow
    task = wf.get_task_from_id(UUID(spiff_task_id))
    if task is None or task.state != TaskState.WAITING:
        return False
    definition = next((d for d in message_definitions(task.task_spec.event_definition) if d.name == name), None)
    if definition is None:
        return False
    dialect = step.compiled.dialect
    event_payload = {"payload": payload} if dialect.wraps_payload else dict(payload)
    event = BpmnEvent(dialect.message_class(name), event_payload, event_correlations(definition, keys, payload))
    engine = wf.script_engine
    wf.script_engine = _MessageScriptEngine(engine, _known_properties(definition, keys, payload))
    try:
        wf.send_event(event)
    except WorkflowException as exc:
        if "not waiting" in str(exc):
            return False
        raise
    finally:
        wf.script_engine = engine
    step.record("message_received", task.task_spec.bpmn_id, message=name, keys=keys, payload=payload,
                **({"from_instance": origin.get("instance_id"), "from_business_key": origin.get("business_key"),
                    "from_element": origin.get("element_id")} if origin else {}))
    return True


def _known_properties(definition: MessageEventDefinition, keys: dict, payload: dict) -> dict[str, Any]:
    """{retrieval expression: value} of the correlation properties this message carries."""
    known = {}
    for prop in definition.correlation_properties:
        found, value = property_value(prop.name, prop.retrieval_expression, keys, payload)
        if found and prop.retrieval_expression:
            known[prop.retrieval_expression] = value
    return known


class _MessageEnvironment:
    def __init__(self, environment, known: dict[str, Any]):
        self._environment, self._known = environment, known

    def __getattr__(self, name):
        return getattr(self._environment, name)

    def evaluate(self, expression, context, external_context=None):
        if expression in self._known:
            return self._known[expression]
        return self._environment.evaluate(expression, context, external_context)


class _MessageScriptEngine:
    """The workflow's script engine while it catches a message from outside.

    On catching, SpiffWorkflow evaluates every correlation property's retrieval expression
    against the payload again (and fails when the sender gave the value as a key, not in the
    payload); those evaluations get the values ``matches`` used. Everything else delegates.
    """

    def __init__(self, engine, known: dict[str, Any]):
        self._engine = engine
        self.environment = _MessageEnvironment(engine.environment, known)

    def __getattr__(self, name):
        return getattr(self._engine, name)
