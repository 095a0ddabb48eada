"""The live-workflow cache (app/engine/live.py): a process keeps the workflows it ran last,
reuses one only at the lock version it saved, and frees the ones it lets go of at once."""
from __future__ import annotations

import gc
import weakref
from contextlib import contextmanager

import pytest
from engine_helpers import complete, instance, open_elements, task
from loop_workflow import loop, run_round
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from app.engine import ProcessEngine
from app.engine.live import LiveWorkflows
from app.errors import StepFailed


def _loop(rounds: int = 20) -> BpmnWorkflow:
    """A loop workflow that ran ``rounds`` rounds: ~2 tasks a round."""
    workflow = loop()
    for n in range(rounds):
        run_round(workflow, count=n)
    return workflow


@contextmanager
def _no_cyclic_gc():
    """Only reference counting frees objects meanwhile: what stays alive here is held by a cycle."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _task_refs(workflow: BpmnWorkflow) -> list[weakref.ref]:
    return [weakref.ref(t) for t in workflow.tasks.values()]


def _alive(refs: list[weakref.ref]) -> int:
    return sum(ref() is not None for ref in refs)


def test_a_workflow_not_kept_is_freed_without_the_cyclic_collector():
    with _no_cyclic_gc():
        workflow = _loop()
        refs = _task_refs(workflow)
        assert len(refs) > 40
        LiveWorkflows(size=0).put(1, 1, workflow)
        del workflow
        assert _alive(refs) == 0


def test_evicted_workflows_are_freed_and_kept_ones_stay_whole():
    cache = LiveWorkflows(size=2)
    with _no_cyclic_gc():
        first, second, third = _loop(), _loop(), _loop()
        first_refs, second_refs, third_refs = _task_refs(first), _task_refs(second), _task_refs(third)
        cache.put(1, 1, first)
        cache.put(2, 1, second)
        cache.put(3, 1, third)  # over the size: the least recently used (1) goes
        del first, second
        assert _alive(first_refs) == 0 and _alive(second_refs) == len(second_refs)

        fresh, outdated = cache.take(2, 2)  # someone else saved instance 2 since: handed out to be caught up
        assert fresh is None and len(outdated.tasks) == len(second_refs)
        assert (cache.hits, cache.misses, cache.outdated) == (0, 1, 1)
        assert cache.take(2, 2) == (None, None)  # taken: gone from the cache
        del outdated
        assert _alive(second_refs) == len(second_refs)  # the caller's to release (catch_up does)

        kept, outdated = cache.take(3, 1)
        assert kept is third and outdated is None and cache.hits == 1
        assert len(kept.tasks) == len(third_refs) and kept.get_next_task(state=TaskState.READY, manual=True)


def test_putting_a_newer_workflow_for_an_instance_frees_the_older_one_but_not_itself():
    cache = LiveWorkflows(size=4)
    with _no_cyclic_gc():
        older, newer = _loop(), _loop()
        older_refs = _task_refs(older)
        cache.put(7, 1, older)
        cache.put(7, 2, newer)
        del older
        assert _alive(older_refs) == 0
        cache.put(7, 3, newer)  # the same object again (saved twice in one transaction): still usable
        assert cache.take(7, 3) == (newer, None) and newer.tasks


def test_a_stale_cached_workflow_is_never_used_after_another_process_moved_the_instance(engine, deploy, db, forms_dir):
    deploy("simple.bpmn")
    iid = engine.start("simple", {"customer": "Ann"}, "admin")  # this process keeps the workflow
    other = ProcessEngine(db, forms_dir)  # another web or worker process
    complete(other, iid, "step_one", {"diagnosis": "thermostat"})

    misses = engine.live.misses
    complete(engine, iid, "step_two", {"fixed": True})
    assert engine.live.misses == misses + 1  # read the state again, not the copy from before step_one
    detail = engine.instance_detail(iid)
    assert detail["status"] == "completed"
    assert (detail["data"]["diagnosis"], detail["data"]["fixed"]) == ("thermostat", True)


def test_an_engine_that_keeps_nothing_runs_a_ticket_to_its_end(db, forms_dir, deploy):
    cold = ProcessEngine(db, forms_dir, live_workflows=0)
    deploy("loop.bpmn")
    iid = cold.start("loop", {"limit": 5}, "admin")
    for n in range(1, 6):
        complete(cold, iid, "work", {"count": n})
        assert cold.live.hits == 0
    assert instance(db, iid).status == "completed"
    assert cold.instance_detail(iid)["data"]["count"] == 5


def test_a_failed_step_leaves_no_half_changed_workflow_in_the_cache(engine, deploy, db):
    deploy("script_error.bpmn")
    iid = engine.start("split_bill", {"total": 90}, "admin")
    with pytest.raises(StepFailed):
        complete(engine, iid, "enter_parties", {"parties": 0})  # total / 0 in the script after it
    assert not engine.live.holds(iid)
    complete(engine, iid, "enter_parties", {"parties": 3})
    assert open_elements(db, iid) == ["send_bills"]
    assert engine.task_detail(task(db, iid, "send_bills").id)["data"]["share"] == 30
