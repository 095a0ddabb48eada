"""``app.engine.spiff_walks`` answers SpiffWorkflow's task-tree walks from ``workflow.tasks``
when it can: every answer must be the one SpiffWorkflow's own walk gives, same tasks, same order.

Checked at every walk while every process in ``bpmn/`` runs its scenarios (call activities,
parallel branches, multi-instance tasks, boundary timers, messages); ``tests/test_corpus.py``
runs the corpus with the same check (the ``checked_walks`` fixture).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskIterator, TaskState

from app.engine import spiff_limits, spiff_walks
from app.engine.scenarios import run_paths

ROOT = Path(__file__).resolve().parent.parent


def test_every_walk_of_every_process_in_the_library_gets_spiffworkflows_answer(checked_walks):
    results = run_paths(ROOT / "bpmn" / "scenarios", ROOT / "forms", library=ROOT / "bpmn")
    failed = [f"{r.scenario}: {r.failures}" for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    # the shortcuts were taken, and so was SpiffWorkflow's walk where they do not apply
    assert checked_walks["short"] > 500 and checked_walks["walked"] > 100, checked_walks


def _loop():
    parser = SpiffBpmnParser()
    parser.add_bpmn_file(str(ROOT / "bench" / "data" / "loop.bpmn"))
    workflow = spiff_walks.install(BpmnWorkflow(parser.get_spec("bench_loop"),
                                                parser.get_subprocess_specs("bench_loop")))
    for task in workflow.get_tasks(state=TaskState.READY):
        task.set_data(limit=10**9)
    workflow.do_engine_steps()
    return workflow


def test_a_long_loop_runs_without_walking_its_tree(monkeypatch):
    workflow = _loop()
    walks = []
    real = TaskIterator.__init__

    def counted(self, task, *args, **kwargs):
        walks.append(kwargs.get("state"))
        real(self, task, *args, **kwargs)

    monkeypatch.setattr(TaskIterator, "__init__", counted)
    for n in range(50):
        task = workflow.get_next_task(state=TaskState.READY, manual=True)  # lazy: SpiffWorkflow's own walk
        walks.clear()
        task.set_data(count=n)
        task.run()
        workflow.do_engine_steps()
        assert walks == [], f"round {n}: SpiffWorkflow walked the tree for {walks}"
    assert workflow.get_next_task(state=TaskState.READY, manual=True).data["count"] == 49


def test_a_task_cut_off_from_the_root_is_left_to_spiffworkflows_walk():
    workflow = _loop()
    ready = workflow.get_tasks(state=TaskState.READY)
    assert len(ready) == 1
    parent = ready[0].parent
    parent._children.remove(ready[0].id)  # the walk can no longer reach it
    assert workflow.get_tasks(state=TaskState.READY) == BpmnWorkflow.get_tasks(workflow, state=TaskState.READY) == []
    parent._children.append(ready[0].id)
    parent._state = TaskState.LIKELY  # the walk does not descend below a predicted task
    assert workflow.get_tasks(state=TaskState.READY) == BpmnWorkflow.get_tasks(workflow, state=TaskState.READY) == []


@pytest.mark.parametrize("depth", [3, 4, 5, 8])
def test_a_lowered_max_depth_limits_the_shortcut_as_it_limits_the_walk(monkeypatch, depth):
    """tests/test_engine_limits.py lowers SpiffWorkflow's max_depth to provoke the silent stop
    it used to cause: the shortcut must stop at the same depth."""
    workflow = _loop()
    defaults = BpmnTaskIterator.__init__.__defaults__
    monkeypatch.setattr(BpmnTaskIterator.__init__, "__defaults__",
                        tuple(depth if d == spiff_limits.MAX_DEPTH else d for d in defaults))
    for n in range(8):
        want = BpmnWorkflow.get_tasks(workflow, state=TaskState.READY)
        assert workflow.get_tasks(state=TaskState.READY) == want, f"round {n}"
        if not want:
            break
        want[0].set_data(count=n)
        want[0].run()
        BpmnWorkflow.do_engine_steps(workflow)
    assert not want  # the walk lost sight of the loop, and so did the shortcut
