"""Catching a kept workflow up to a newer stored state (app/engine/catch_up.py): the result is
the workflow a full load of that state gives, only cheaper; and every process in ``bpmn/``
runs its scenarios with two processes taking turns on each ticket."""
from __future__ import annotations

import gc
import json
import logging
import weakref
from pathlib import Path

import pytest
from loop_workflow import loop, run_round
from SpiffWorkflow.util.task import TaskState

from app.engine import catch_up as catch_up_module
from app.engine import compile as compile_module
from app.engine import state
from app.engine.dialects import DIALECTS
from app.engine.live import LiveWorkflows
from app.engine.scenarios import run_paths

ROOT = Path(__file__).resolve().parent.parent
SERIALIZER = DIALECTS["spiff"].serializer


def _text(workflow) -> str:
    return state.dump(SERIALIZER, workflow)


def _load(text: str):
    return state.load(SERIALIZER, text, *_specs())


_SPECS = {}


def _specs():
    if not _SPECS:
        workflow = loop()
        _SPECS["specs"] = (workflow.spec, workflow.subprocess_specs, workflow.script_engine)
    return _SPECS["specs"]


def _catch_up(text: str, kept):
    """(A kept workflow is of the instance's version: the same spec objects.)"""
    return catch_up_module.catch_up(SERIALIZER, text, kept, kept.spec, kept.subprocess_specs, kept.script_engine)


def _shape(workflow) -> tuple:
    """Everything a workflow holds that a load restores, in the order it holds it."""
    serializer = SERIALIZER
    tasks = [(t.id, type(t), sorted(t.__dict__), t.task_spec.name, t._state, t._parent, t._children,
              t.last_state_change, t.triggered, t.data, t.internal_data, t.workflow is workflow)
             for t in workflow.tasks.values()]
    waiting = sorted(str(t.id) for t in workflow.event_manager.tasks.values()) \
        if hasattr(workflow.event_manager, "tasks") else None
    return json.dumps(serializer.to_dict(workflow), cls=serializer._encoder_cls, sort_keys=True), tasks, waiting


def _moved_elsewhere(text: str, rounds: int, **data) -> str:
    """What another process stores after ``rounds`` more steps of the ticket stored as ``text``."""
    other = _load(text)
    for n in range(rounds):
        run_round(other, **{"count": 1000 + n, **data})
        text = _text(other)
    return text


def _kept(rounds: int, **start_data):
    """A workflow kept in memory after ``rounds`` steps (dumped at each, as the engine does)."""
    workflow = loop(**start_data)
    for n in range(rounds):
        run_round(workflow, count=n)
        text = _text(workflow)
    return workflow, text


@pytest.mark.parametrize("behind", [0, 1, 3])
def test_a_kept_workflow_caught_up_is_the_workflow_a_full_load_gives(behind):
    kept, text = _kept(40)
    newer = _moved_elsewhere(text, behind)
    old_tasks = {t.id: t for t in kept.tasks.values()}
    finished_before = {t.id for t in kept.tasks.values() if t._state & TaskState.FINISHED_MASK}
    caught = _catch_up(newer, kept)
    assert caught is not None
    assert _shape(caught) == _shape(_load(newer))
    assert _text(caught) == newer  # and its first dump writes the state it came from

    taken = {t.id for t in caught.tasks.values() if old_tasks.get(t.id) is t}
    assert taken == finished_before  # restored: only what was not finished here (the open task, what lies ahead)
    assert len(taken) > 75
    assert kept.__dict__ == {}  # released

    run_round(caught, count=7)  # and it goes on like any workflow
    assert _shape(_load(_text(caught))) == _shape(caught)


def test_a_finished_task_changed_elsewhere_through_shared_data_is_restored_not_taken():
    kept, text = _kept(12, order={"lines": [{"sku": "A-1", "qty": 1}]})
    other = _load(text)
    other.get_next_task(state=TaskState.READY, manual=True).data["order"]["lines"][0]["qty"] = 5  # a script
    run_round(other, count=99)
    newer = _text(other)
    assert '"qty": 1' not in newer  # every finished task's data changed
    old_tasks = {t.id: t for t in kept.tasks.values()}
    caught = _catch_up(newer, kept)
    assert _shape(caught) == _shape(_load(newer))
    changed = [t for t in caught.tasks.values() if "order" in t.data]  # its first task's line, and all after it
    assert len(changed) > 20 and all(old_tasks.get(t.id) is not t for t in changed)


def test_tasks_dropped_elsewhere_are_gone_and_what_is_not_taken_is_freed_without_the_cyclic_collector():
    kept, text = _kept(10)
    other = _load(text)
    finished = [t for t in other.get_tasks(state=TaskState.COMPLETED) if t.task_spec.name == "work"]
    finished[2].reset_branch(None)  # a ticket sent back: every task after it goes
    other.do_engine_steps()
    newer = _text(other)
    refs = {t.id: weakref.ref(t) for t in kept.tasks.values()}
    was = gc.isenabled()
    gc.disable()
    try:
        caught = _catch_up(newer, kept)
        del kept
        alive = {task_id for task_id, ref in refs.items() if ref() is not None}
        taken = {task_id for task_id, ref in refs.items() if ref() is not None and caught.tasks.get(task_id) is ref()}
    finally:
        if was:
            gc.enable()
    assert _shape(caught) == _shape(_load(newer))
    assert alive == taken and len(taken) > 3  # the tasks before the reset; the rest went with reference counting
    assert len(caught.tasks) < len(refs)


def test_what_cannot_be_caught_up_is_none_and_the_kept_workflow_is_released(caplog):
    kept, text = _kept(6)
    spiffs_own = SERIALIZER.serialize_json(_load(text))  # one line: another layout
    assert _catch_up(spiffs_own, kept) is None and kept.__dict__ == {}

    fresh = loop()  # dumped never: nothing kept to take over
    assert _catch_up(text, fresh) is None and fresh.__dict__ == {}

    kept, text = _kept(6)  # given another version's spec (parsed apart: other objects)
    assert catch_up_module.catch_up(SERIALIZER, text, kept, *_specs()) is None and kept.__dict__ == {}

    kept, text = _kept(6)
    lines = text.split("\n")
    lines[3] = lines[3].replace('"typename": "Task"', '"typename": "Nothing"')
    with caplog.at_level(logging.WARNING, logger="app.engine.catch_up"):
        assert _catch_up("\n".join(lines), kept) is None
    assert "loading the state whole" in caplog.text and kept.__dict__ == {}


class _TwoProcesses(LiveWorkflows):
    """The live caches of two processes taking turns: every transaction runs in the process
    that did not run the one before, so each finds the workflow it kept one or more steps old."""

    def __init__(self):
        super().__init__()
        self.caches, self.turn = [LiveWorkflows(), LiveWorkflows()], 0

    def holds(self, instance_id):
        return self.caches[self.turn ^ 1].holds(instance_id)  # asked before take, for the next turn

    def take(self, instance_id, lock_version):
        self.turn ^= 1
        return self.caches[self.turn].take(instance_id, lock_version)

    def put(self, instance_id, lock_version, workflow):
        self.caches[self.turn].put(instance_id, lock_version, workflow)


def test_every_process_in_the_library_runs_its_scenarios_with_two_processes_taking_turns(monkeypatch):
    counts = {"caught up": 0, "loaded whole": 0}
    real = compile_module.catch_up

    def checked(serializer, text, kept, spec, subprocess_specs, script_engine):
        caught = real(serializer, text, kept, spec, subprocess_specs, script_engine)
        whole = state.load(serializer, text, spec, subprocess_specs, script_engine)
        if caught is None:
            counts["loaded whole"] += 1
            return whole
        counts["caught up"] += 1
        assert json.dumps(serializer.to_dict(caught), cls=serializer._encoder_cls) == \
            json.dumps(serializer.to_dict(whole), cls=serializer._encoder_cls)
        convert = serializer.registry.convert  # events in internal data have no __eq__: compare their dicts
        assert [(t.id, sorted(t.__dict__), t.data, convert(t.internal_data)) for t in caught.tasks.values()] == \
            [(t.id, sorted(t.__dict__), t.data, convert(t.internal_data)) for t in whole.tasks.values()]
        return caught

    monkeypatch.setattr(compile_module, "catch_up", checked)
    monkeypatch.setattr(state, "_SEED_ABOVE", 0)  # small tickets keep their tasks' JSON too
    import app.engine as engine_package
    real_init = engine_package.ProcessEngine.__init__

    def two_processes(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.live = _TwoProcesses()

    monkeypatch.setattr(engine_package.ProcessEngine, "__init__", two_processes)
    results = run_paths(ROOT / "bpmn" / "scenarios", ROOT / "forms", library=ROOT / "bpmn")
    failed = [r.line() for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    assert counts["caught up"] > 80, counts  # 113 when written
