"""Long-running tickets: loops past SpiffWorkflow's default depth, and silent stops made visible."""
from __future__ import annotations

import pytest
from conftest import bpmn_path
from engine_helpers import incidents, status, task
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskIterator, TaskState

from app.engine import spiff_limits
from app.engine.compile import build_parser, specs_for
from app.engine.dialects import DIALECTS
from app.engine.timing import advance
from app.errors import StepFailed


def _raw_loop():
    parser = build_parser(DIALECTS["spiff"], {"loop.bpmn": bpmn_path("loop.bpmn").read_text()}, validate=False)
    spec, subprocesses = specs_for(parser, "loop")
    workflow = BpmnWorkflow(spec, subprocesses)
    workflow.get_tasks(state=TaskState.READY)[0].set_data(limit=10**6)
    advance(workflow)
    return workflow


def test_a_loop_runs_past_five_hundred_rounds():
    """SpiffWorkflow alone stops looking at depth 1,000: round 501 of a loop never ran."""
    workflow = _raw_loop()
    for n in range(1, 700):
        [work] = workflow.get_tasks(state=TaskState.READY, manual=True)
        work.set_data(count=n)
        work.run()
        advance(workflow)
    assert [t.task_spec.bpmn_id for t in workflow.get_tasks(state=TaskState.READY, manual=True)] == ["work"]


@pytest.fixture
def shallow_iterators():
    """SpiffWorkflow's original depth limit, scaled down, to provoke the silent stop quickly."""
    saved = TaskIterator.__init__.__defaults__, spiff_limits.BpmnTaskIterator.__init__.__defaults__
    for cls in (TaskIterator, spiff_limits.BpmnTaskIterator):
        cls.__init__.__defaults__ = tuple(12 if d == spiff_limits.MAX_DEPTH else d for d in cls.__init__.__defaults__)
    yield
    TaskIterator.__init__.__defaults__, spiff_limits.BpmnTaskIterator.__init__.__defaults__ = saved


def test_a_step_the_engine_cannot_reach_becomes_an_incident(engine, deploy, db, shallow_iterators):
    deploy("loop.bpmn")
    iid = engine.start("loop", {"limit": 100}, "admin")
    with pytest.raises(StepFailed) as failed:
        for n in range(1, 20):
            engine.complete(task(db, iid, "work").id, "admin", {"count": n})

    assert failed.value.element_id == "more_gateway"
    assert "could not run this step" in failed.value.message
    assert status(db, iid) == "error"
    [incident] = incidents(db, iid)
    assert incident.element_id == "more_gateway"
    assert task(db, iid, "work") is not None  # the completion that failed was rolled back: work is open again
