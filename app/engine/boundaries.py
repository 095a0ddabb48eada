"""Which user tasks a boundary event is about: the task it sits on, found from a later step.

An SLA timer on a user task calls the ``escalation`` process; its ``task.escalate`` service
must escalate THAT task, not every open task of the same BPMN element (two installments of an
IOU each have their own collection call open). From the running service task this climbs
the task tree (and out of called processes, through the call activity) to the boundary event
that led there, and gives the Spiff ids of the task it is attached to and everything under
it (a boundary event on a sub-process is about the user tasks inside).
"""
from __future__ import annotations

from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent


def late_tasks(task) -> frozenset[str] | None:
    """Spiff ids under the task whose boundary event led to ``task``; None when no boundary event did."""
    top = task.workflow.top_workflow
    node = task
    while node is not None:
        parent = node.parent
        if parent is None:  # the root of a called process: go on from its call activity
            called_from = node.workflow.parent_task_id
            node = top.get_task_from_id(called_from) if called_from is not None else None
            continue
        if isinstance(parent.task_spec, BoundaryEventSplit) and isinstance(node.task_spec, BoundaryEvent):
            hosts = [c for c in parent.children if not isinstance(c.task_spec, BoundaryEvent)]
            return frozenset(_under(top, hosts))
        node = parent
    return None


def _under(top, tasks) -> set[str]:
    """These tasks, their descendants, and the tasks of the processes they call."""
    found: set[str] = set()
    pending = list(tasks)
    while pending:
        task = pending.pop()
        found.add(str(task.id))
        pending.extend(task.children)
        called = top.subprocesses.get(task.id)
        if called is not None:
            pending.extend(called.tasks.values())
    return found
