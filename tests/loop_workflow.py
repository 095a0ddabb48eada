"""The benchmark's loop (``bench/data/loop.bpmn``: user task -> gateway -> back, two tasks a
round) in raw SpiffWorkflow, for tests of the state code and the live-workflow cache."""
from __future__ import annotations

from pathlib import Path

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

LOOP = Path(__file__).resolve().parent.parent / "bench" / "data" / "loop.bpmn"


def loop(**start_data) -> BpmnWorkflow:
    """A new loop workflow that never reaches its limit, at its first user task."""
    parser = SpiffBpmnParser()
    parser.add_bpmn_file(str(LOOP))
    workflow = BpmnWorkflow(parser.get_spec("bench_loop"), parser.get_subprocess_specs("bench_loop"))
    for task in workflow.get_tasks(state=TaskState.READY):
        task.set_data(limit=10**9, **start_data)
    workflow.do_engine_steps()
    return workflow


def run_round(workflow: BpmnWorkflow, **data) -> None:
    """Complete the open user task with ``data`` and run on to the next one."""
    task = workflow.get_next_task(state=TaskState.READY, manual=True)
    task.set_data(**data)
    task.run()
    workflow.do_engine_steps()
