"""Two people acting on the same task at the same moment, on PostgreSQL: exactly one wins."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from conftest import bpmn_path
from engine_helpers import history, open_elements, status, task, tasks, users

from app.engine import ProcessEngine
from app.errors import Conflict, IllegalState
from app.models import TaskStatus

ROUNDS = 20

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_engine(pg_db, forms_dir) -> ProcessEngine:
    engine = ProcessEngine(pg_db, forms_dir)
    engine.deploy([bpmn_path("simple.bpmn")])
    users(pg_db, ann=["staff"], bob=["staff"])
    return engine


def _race(*actions):
    """Run the actions at the same moment; returns each one's result or exception."""
    barrier = threading.Barrier(len(actions))

    def run(action):
        barrier.wait()
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test looks at
            return exc

    with ThreadPoolExecutor(len(actions)) as pool:
        return list(pool.map(run, actions))


def _outcome(results) -> tuple[int, list]:
    """(how many succeeded, the failures)."""
    failures = [r for r in results if isinstance(r, Exception)]
    return len(results) - len(failures), failures


def test_two_people_completing_the_same_task_at_once(pg_engine, pg_db):
    for n in range(ROUNDS):
        iid = pg_engine.start("simple", {}, "admin")
        step = task(pg_db, iid, "step_one")

        results = _race(partial(pg_engine.complete, step.id, "ann", {"by": "ann"}),
                        partial(pg_engine.complete, step.id, "bob", {"by": "bob"}))

        won, failures = _outcome(results)
        assert won == 1, f"round {n}: {results}"
        assert [type(f) for f in failures] == [Conflict], f"round {n}: {failures!r}"
        assert len(history(pg_db, iid, "task_completed")) == 1
        assert open_elements(pg_db, iid) == ["step_two"]  # one next task, not two
        [done] = tasks(pg_db, iid, status=TaskStatus.COMPLETED)
        winner = "ann" if results[0] is None else "bob"
        assert done.completed_by == winner
        assert pg_engine.task_detail(task(pg_db, iid, "step_two").id)["data"]["by"] == winner


def test_two_people_claiming_the_same_task_at_once(pg_engine, pg_db):
    for n in range(ROUNDS):
        iid = pg_engine.start("simple", {}, "admin")
        step = task(pg_db, iid, "step_one")

        results = _race(partial(pg_engine.claim, step.id, "ann"), partial(pg_engine.claim, step.id, "bob"))

        won, failures = _outcome(results)
        assert won == 1, f"round {n}: {results}"
        assert [type(f) for f in failures] == [Conflict], f"round {n}: {failures!r}"
        winner = "ann" if results[0] is None else "bob"
        row = task(pg_db, iid, "step_one")
        assert (row.status, row.assignee) == (TaskStatus.CLAIMED, winner)
        assert [e.actor for e in history(pg_db, iid, "task_claimed")] == [winner]


def test_completing_while_someone_claims(pg_engine, pg_db):
    """Claim and complete at once: exactly one wins; a claim is never silently overridden."""
    for n in range(ROUNDS):
        iid = pg_engine.start("simple", {}, "admin")
        step = task(pg_db, iid, "step_one")

        results = _race(partial(pg_engine.claim, step.id, "ann"), partial(pg_engine.complete, step.id, "bob"))

        won, failures = _outcome(results)
        assert won == 1, f"round {n}: {results}"
        assert [type(f) for f in failures] == [Conflict], f"round {n}: {failures!r}"
        if results[0] is None:  # ann's claim came first: the task is hers, still open
            row = task(pg_db, iid, "step_one")
            assert (row.status, row.assignee) == (TaskStatus.CLAIMED, "ann")
            assert history(pg_db, iid, "task_completed") == []
        else:
            [done] = tasks(pg_db, iid, status=TaskStatus.COMPLETED)
            assert (done.completed_by, done.assignee) == ("bob", "bob")
            assert history(pg_db, iid, "task_claimed") == []
            assert open_elements(pg_db, iid) == ["step_two"]


def test_suspending_while_someone_completes(pg_engine, pg_db):
    """Either the completion or the suspension comes first; the loser is told, nothing is lost."""
    for n in range(ROUNDS):
        iid = pg_engine.start("simple", {}, "admin")
        step = task(pg_db, iid, "step_one")

        results = _race(partial(pg_engine.complete, step.id, "ann"), partial(pg_engine.suspend, iid, "admin"))

        assert all(r is None or isinstance(r, Conflict | IllegalState) for r in results), f"round {n}: {results!r}"
        suspended = results[1] is None
        assert status(pg_db, iid) == ("suspended" if suspended else "waiting")
        assert len(history(pg_db, iid, "task_completed")) == (1 if results[0] is None else 0)
