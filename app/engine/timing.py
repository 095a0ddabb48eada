"""Running a workflow until it waits, and reading when its timers fall due."""
from __future__ import annotations

from datetime import datetime

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from . import clock

MAX_TIMER_ROUNDS = 50


def advance(workflow: BpmnWorkflow) -> None:
    """Run until the process waits; timers already due fire too (refresh before steps)."""
    for _ in range(MAX_TIMER_ROUNDS):
        workflow.refresh_timers()
        workflow.do_engine_steps()
        if not _timer_due_now(workflow):
            return


def waiting_catch_tasks(workflow: BpmnWorkflow) -> list:
    """The catch events (timers, messages, start events) the workflow waits at now."""
    return [t for t in workflow.event_manager.tasks.values() if t.state == TaskState.WAITING]


def _timer_due_now(workflow: BpmnWorkflow) -> bool:
    now = clock.now()
    for task in waiting_catch_tasks(workflow):
        due = timer_due(task)
        if due is not None and due < now:  # SpiffWorkflow fires once due < now
            return True
    return False


def _parts(definition) -> list:
    if isinstance(definition, MultipleEventDefinition):
        return list(definition.event_definitions)
    return [definition]


def timer_definition(definition) -> TimerEventDefinition | None:
    """The timer of a catch event, also inside an event-based gateway (multiple event)."""
    return next((d for d in _parts(definition) if isinstance(d, TimerEventDefinition)), None)


def message_definitions(definition) -> list[MessageEventDefinition]:
    return [d for d in _parts(definition) if isinstance(d, MessageEventDefinition)]


def timer_due(task) -> datetime | None:
    """When a waiting catch event's timer falls due (None: no timer, or no more cycles)."""
    definition = timer_definition(task.task_spec.event_definition)
    if definition is None:
        return None
    value = task.internal_data.get("event_value")
    if value is None:
        return None
    if isinstance(definition, CycleTimerEventDefinition):
        if not isinstance(value, dict) or value.get("cycles") == 0:
            return None
        return datetime.fromisoformat(value["next"])
    try:
        return TimerEventDefinition.parse_time_or_duration(value) if not isinstance(value, dict) else None
    except Exception:
        return None
