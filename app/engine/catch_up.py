"""Bring a kept workflow up to a newer stored state, restoring only what changed.

When another process moved a ticket after this one kept its workflow (the live cache holds
an older version), most of the newer state is what this process has already: the lines of
the tasks that had finished. ``catch_up`` takes those tasks over as they are, with the JSON
kept for them (``state._Fragments``), and restores only the lines it has no task for. A
ticket that ran 1,000 steps and moved one step elsewhere is brought up to date in a fraction
of a full load (bench/RESULTS.md).

A task is taken over only when its line is, character for character, the one its kept JSON
was made from, and its parent was taken over too (a task's data is stored as the difference
from its parent's): then a full load would restore the same task. Anything else comes from
its line, as ``state.load`` restores it. A state not laid out as ``state.dump`` writes it,
of another serializer version, or a workflow with no kept JSON, gets None: load it whole.
"""
from __future__ import annotations

import logging

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from . import state
from .live import release

log = logging.getLogger(__name__)

def catch_up(serializer, text: str, kept: BpmnWorkflow, spec, subprocess_specs, script_engine) -> BpmnWorkflow | None:
    """The workflow stored as ``text``, built from ``kept`` (an older version of it, which is
    released whatever happens: some of its tasks may now belong to the new workflow), or None
    when it cannot be (see the module's doc)."""
    try:
        return _catch_up(serializer, text, kept, spec, subprocess_specs, script_engine)
    except Exception:  # noqa: BLE001 - a full load reads the same text: it restores or raises on its own
        log.warning("catching a kept workflow up failed; loading the state whole", exc_info=True)
        return None
    finally:
        release(kept)


def _catch_up(serializer, text, kept, spec, subprocess_specs, script_engine):
    fragments = kept.__dict__.get(state._FRAGMENTS)
    lines = state.task_lines(text)
    if fragments is None or not fragments.entries or lines is None or kept.spec is not spec:
        return None  # (another spec: its tasks' task_spec objects would not be this version's)
    dct = state._parse(lines[0] + lines[-1])  # everything but the tasks: '..."tasks": {' + '}, "root": ...}'
    if dct.get(serializer.VERSION_KEY) != serializer.VERSION or dct.get("tasks") != {}:
        return None
    takeable = {}  # a finished task's line -> (its task in ``kept``, its entry)
    entries = fragments.entries
    for task_id, task in kept.tasks.items():
        entry = entries.get(task_id.int)
        if entry is not None:
            takeable[entry.text] = (task, entry)
    caught = state._Fragments(serializer)

    def restore_tasks(registry, _none, workflow):
        return _tasks(registry, lines[1:-1], takeable, caught.entries, workflow)

    workflow = serializer.from_dict(dct, spec=spec, subprocess_specs=subprocess_specs, restore_tasks=restore_tasks)
    workflow.script_engine = script_engine
    setattr(workflow, state._FRAGMENTS, caught)
    return workflow


def _tasks(registry, lines: list[str], takeable: dict, entries: dict, workflow) -> dict:
    """``workflow.tasks`` from the tasks' lines, in their order: taken over from ``takeable``
    where the line and the parent allow it, restored from the line otherwise. ``entries``
    gets the kept JSON of every finished task (``_Fragments.seeded`` does the same)."""
    tasks, typename, finished = workflow.tasks, registry.typenames[Task], TaskState.FINISHED_MASK
    ids = workflow.top_workflow.__dict__.get(state._IDS)
    for line in lines:
        found = takeable.get(line)
        if found is not None:
            task, entry = found
            parent_id = task._parent
            if parent_id is None or entries.get(parent_id.int) is entry.parent is not None:
                task.workflow = workflow
                tasks[task.id] = task
                entries[task.id.int] = entry
                continue
        dct = state._parse(line[state._ID:])
        if type(dct) is not dict or dct.get("typename") != typename:
            raise ValueError(f"task line {line[:state._ID]!r} holds no task")
        task = state._restore_task(registry, Task, dct, workflow, ids)
        if task._state & finished:
            parent = entries.get(task._parent.int) if task._parent is not None else None
            if task._parent is None or parent is not None:
                entries[task.id.int] = state._Entry(task, line, parent)
    return tasks

