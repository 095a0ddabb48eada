"""Shortcuts past SpiffWorkflow's walks over a workflow's whole task tree, same answers.

The task tree keeps every task a ticket ever ran (a BPMN loop adds two levels a round), and
SpiffWorkflow walks all of it several times per step: after every task it runs, for WAITING
tasks to update (``update_waiting_tasks``), and in ``do_engine_steps``, for READY tasks to run.
Its iterator costs about a microsecond per task visited, so in a ticket that ran 1,000
rounds these walks were most of a completion (bench/RESULTS.md). A look at
``workflow.tasks`` (a flat dict of the same tasks) answers most of them in a twentieth:

- no task in the workflow is in the state asked for: the walk, which can only visit
  the workflow's own tasks, finds none either;
- exactly one is, and it is reachable the way the walk descends (each ancestor up to the
  root in a state at or above the walk's ``min_state``): the walk finds exactly it, and
  with one task the order cannot differ.

Anything else (several tasks, call activities' subprocesses, other filters, iterators
consumed while the tree changes) goes to SpiffWorkflow's own walk. ``install`` binds the
shortcuts to one workflow object: the raw SpiffWorkflow baseline of ``bench/`` and the
serializer's idea of the class are untouched.
"""
from __future__ import annotations

from types import MethodType

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from .spiff_limits import max_depth

_DEFINITE = TaskState.DEFINITE_MASK  # FUTURE | WAITING | READY | STARTED: walks descend from FUTURE up
_MIN_STATE = TaskState.FUTURE


def install(workflow: BpmnWorkflow) -> BpmnWorkflow:
    workflow.get_tasks = MethodType(_get_tasks, workflow)
    workflow.update_waiting_tasks = MethodType(_update_waiting_tasks, workflow)
    return workflow


def _get_tasks(workflow: BpmnWorkflow, first_task=None, **kwargs) -> list:
    state = kwargs.get("state")
    if (first_task is None and len(kwargs) == 1 and state is not None and state & ~_DEFINITE == 0
            and not workflow.subprocesses):
        found = [task for task in workflow.tasks.values() if task._state & state]
        if not found:
            return found
        if len(found) == 1 and _reachable(workflow, found[0]):
            return found
    return BpmnWorkflow.get_tasks(workflow, first_task, **kwargs)


def _update_waiting_tasks(workflow: BpmnWorkflow) -> None:
    # The walk updates tasks as it goes (an update can make the next task WAITING), so only
    # the "none at all" answer is taken here.
    waiting = TaskState.WAITING
    for task in workflow.tasks.values():
        if task._state & waiting:
            BpmnWorkflow.update_waiting_tasks(workflow)
            return


def _reachable(workflow: BpmnWorkflow, task) -> bool:
    """Whether a depth-first walk from the root with a definite-state filter visits ``task``:
    every ancestor is in the tree, lists it as a child and is FUTURE or later, and the task is
    no deeper than the walk's ``max_depth`` (lifted by ``spiff_limits``; tests lower it)."""
    tasks, depth = workflow.tasks, 0
    while task._parent is not None:
        parent = tasks.get(task._parent)
        if parent is None or parent._state < _MIN_STATE or task.id not in parent._children:
            return False
        task, depth = parent, depth + 1
    return task is workflow.task_tree and depth <= max_depth()
