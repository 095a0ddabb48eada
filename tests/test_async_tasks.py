"""Asynchronous service tasks: the web request leaves the instance waiting at the task, a
worker runs the operation (retries with backoff, once even when two run it), then the
instance moves on; a permanent failure follows the error boundary or becomes an incident."""
from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from conftest import bpmn_path
from engine_helpers import T0, history, incidents, instance, open_elements, status
from sqlalchemy import select
from test_workers import WorkerProcess, _wait_for

import workers.testing_ops  # noqa: F401  (registers test.pause for the killed-worker test)
from app.container import Hotline
from app.engine import ProcessEngine, clock
from app.engine.async_tasks import decode
from app.errors import LibraryInvalid, StepFailed
from app.migrate import upgrade
from app.models.async_work import ServiceJob
from app.services.failures import PermanentError
from app.services.registry import operation

CALLS: list[dict] = []
PLAN: list[Exception | None] = []  # what the next calls do: raise the exception, or succeed
_lock = threading.Lock()


@operation("test.async_op")
def async_op(label: str = "", amount: object = None, channel: str | None = None,
             _idempotency_key: str | None = None) -> dict:
    """Test-only: record the call; fail as PLAN says; "slow" takes a moment."""
    with _lock:
        CALLS.append({"label": label, "amount": amount, "channel": channel, "key": _idempotency_key})
        outcome = PLAN.pop(0) if PLAN else None
    if label == "slow":
        time.sleep(0.5)
    if outcome is not None:
        raise outcome
    return {"label": label, "amount": amount}


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()
    PLAN.clear()
    yield
    CALLS.clear()
    PLAN.clear()


def jobs(db, instance_id: int | None = None) -> list[ServiceJob]:
    q = select(ServiceJob).order_by(ServiceJob.id)
    if instance_id is not None:
        q = q.where(ServiceJob.instance_id == instance_id)
    with db.transaction() as s:
        return list(s.scalars(q))


def data(engine, iid: int) -> dict:
    inst = instance(engine.db, iid)
    with engine.db.transaction() as s:
        compiled = engine.specs.get(s, inst.version_id)
    workflow = compiled.load(inst.state)
    last = workflow.last_task
    return workflow.data if workflow.completed else dict(last.data if last is not None else {})


def test_the_step_waits_at_the_task_and_a_worker_run_moves_the_instance_on(engine, deploy):
    clock.freeze(T0)
    deploy("async_basic.bpmn")
    seen = []
    engine.on_committed.append(seen.extend)

    iid = engine.start("async_basic", {"label": "a", "amount": Decimal("12.50")}, "admin")

    assert status(engine.db, iid) == "waiting"
    assert open_elements(engine.db, iid) == []  # nobody's inbox: the instance waits for the worker
    assert CALLS == []  # the web request did not call the operation
    [job] = jobs(engine.db, iid)
    assert (job.element_id, job.operation, job.status, job.attempts) == ("charge", "test.async_op", "pending", 0)
    assert decode(job.params) == {"label": "a", "amount": Decimal("25.00")}  # evaluated in the step, Decimal intact
    assert seen == [("service_job", (job.id, T0))]
    assert [e.detail["job_id"] for e in history(engine.db, iid, "service_job_queued")] == [job.id]

    outcome = engine.run_async_task(job.id)

    assert outcome["completed"] is True
    assert CALLS == [{"label": "a", "amount": Decimal("25.00"), "channel": None,
                      "key": f"hotline-{iid}-{job.spiff_task_id}"}]  # the same key for every attempt
    assert open_elements(engine.db, iid) == ["review"]
    assert data(engine, iid)["charged"] == {"label": "a", "amount": Decimal("25.00")}
    assert jobs(engine.db, iid) == []
    assert len(history(engine.db, iid, "service_job_completed")) == 1

    assert engine.run_async_task(job.id)["ran"] is False  # a second run (a duplicate job) changes nothing
    assert len(CALLS) == 1


@pytest.mark.postgres
def test_two_workers_running_one_job_at_once_call_the_operation_once(pg_db, forms_dir):
    ProcessEngine(pg_db, forms_dir).deploy([bpmn_path("async_basic.bpmn")])
    engines = [ProcessEngine(pg_db, forms_dir) for _ in range(4)]
    for _ in range(3):
        iid = engines[0].start("async_basic", {"label": "slow", "amount": 1}, "admin")
        [job] = jobs(pg_db, iid)
        barrier = threading.Barrier(4)
        results: list = [None] * 4

        def run(i, job_id=job.id, barrier=barrier, results=results):
            barrier.wait()
            try:
                results[i] = (engines[i].run_async_task(job_id) if i < 3
                              else engines[i].run_due_async_tasks())  # one sweep joins the race
            except Exception as exc:  # noqa: BLE001 - the test looks at the outcome
                results[i] = exc

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not [r for r in results if isinstance(r, Exception)], results
        assert open_elements(pg_db, iid) == ["review"]
        assert len(history(pg_db, iid, "service_job_completed")) == 1
    assert len(CALLS) == 3  # one call per instance, whatever raced


def test_a_transient_failure_is_retried_after_the_backoff(engine, deploy):
    clock.freeze(T0)
    deploy("async_basic.bpmn")
    iid = engine.start("async_basic", {"label": "b", "amount": 1}, "admin")
    [job] = jobs(engine.db, iid)
    PLAN.append(ConnectionError("payment gateway unreachable"))

    first = engine.run_async_task(job.id)

    assert first["retry_at"] == T0 + timedelta(seconds=10)
    [row] = jobs(engine.db, iid)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "payment gateway unreachable" in row.last_error
    assert status(engine.db, iid) == "waiting"  # a retry is not an incident
    assert engine.run_async_task(job.id)["ran"] is False  # not due yet
    clock.advance(seconds=10)
    assert engine.run_due_async_tasks()["ran"] == [job.id]  # the sweep runs it when due
    assert open_elements(engine.db, iid) == ["review"]
    assert len(CALLS) == 2


def test_exhausted_retries_become_an_incident_and_a_retry_runs_the_operation_again(engine, deploy):
    clock.freeze(T0)
    deploy("async_basic.bpmn")  # retries 2, backoff PT10S: attempts at 0 s, 10 s, 30 s
    iid = engine.start("async_basic", {"label": "c", "amount": 1}, "admin")
    [job] = jobs(engine.db, iid)
    PLAN.extend([RuntimeError("CRM says no")] * 3)

    assert engine.run_async_task(job.id)["retry_at"] == T0 + timedelta(seconds=10)
    clock.advance(seconds=10)
    assert engine.run_async_task(job.id)["retry_at"] == T0 + timedelta(seconds=30)
    clock.advance(seconds=20)
    outcome = engine.run_async_task(job.id)

    assert outcome["incident_id"]
    assert status(engine.db, iid) == "error"
    [incident] = incidents(engine.db, iid)
    assert (incident.status, incident.element_id, incident.action["name"]) == ("open", "charge", "retry_service_job")
    assert "failed 3 time(s)" in incident.error and "CRM says no" in incident.error
    [row] = jobs(engine.db, iid)
    assert (row.status, row.attempts, row.incident_id) == ("failed", 3, incident.id)
    clock.advance(seconds=3600)
    assert engine.run_due_async_tasks()["ran"] == []  # given up: the sweep leaves it to a manager

    engine.retry_incident(incident.id, "zhang.min")

    assert len(CALLS) == 4  # the retry ran the operation again
    assert status(engine.db, iid) == "waiting"
    assert open_elements(engine.db, iid) == ["review"]
    assert [i.status for i in incidents(engine.db, iid)] == ["resolved"]
    assert jobs(engine.db, iid) == []


def test_a_permanent_error_follows_the_error_boundary_with_the_error_in_the_data(engine, deploy):
    clock.freeze(T0)
    deploy("async_boundary.bpmn")
    iid = engine.start("async_boundary", {"label": "d"}, "admin")
    [job] = jobs(engine.db, iid)
    PLAN.append(PermanentError("customer account is closed", code="REFUSED"))

    outcome = engine.run_async_task(job.id)

    assert outcome["boundary"] == "crm_refused"
    assert len(CALLS) == 1  # permanent: no retry
    assert open_elements(engine.db, iid) == ["handle_refusal"]
    assert status(engine.db, iid) == "waiting" and incidents(engine.db, iid) == []
    error = data(engine, iid)["service_error"]
    assert error["message"] == "customer account is closed" and error["code"] == "REFUSED"
    assert jobs(engine.db, iid) == []  # the boundary cancelled the task: its row is gone
    [failed] = history(engine.db, iid, "service_job_failed")
    assert failed.detail["boundary"] == "crm_refused"


def test_a_permanent_error_no_boundary_catches_is_an_incident_at_once(engine, deploy):
    clock.freeze(T0)
    deploy("async_boundary.bpmn")  # its only error boundary catches REFUSED
    iid = engine.start("async_boundary", {"label": "e"}, "admin")
    [job] = jobs(engine.db, iid)
    PLAN.append(PermanentError("bad phone number", code="BAD_INPUT"))

    outcome = engine.run_async_task(job.id)

    assert outcome["incident_id"] and len(CALLS) == 1
    assert status(engine.db, iid) == "error"
    [incident] = incidents(engine.db, iid)
    assert "failed permanently" in incident.error and "bad phone number" in incident.error


def test_camunda_async_before_runs_in_the_worker(engine, deploy):
    clock.freeze(T0)
    deploy("async_camunda.bpmn")
    iid = engine.start("async_camunda", {"label": "f"}, "admin")
    assert status(engine.db, iid) == "waiting" and CALLS == []
    [job] = jobs(engine.db, iid)
    assert job.max_attempts == 1  # camunda:property retries = 0

    engine.run_async_task(job.id)

    assert CALLS[0]["label"] == "f" and CALLS[0]["channel"] == "phone"  # ${label} evaluated, plain text literal
    assert open_elements(engine.db, iid) == ["review"]
    assert data(engine, iid)["charged"] == {"label": "f", "amount": None}


def test_an_interrupting_boundary_timer_cancels_the_waiting_task_and_its_job(engine, deploy):
    clock.freeze(T0)
    deploy("async_boundary.bpmn")
    iid = engine.start("async_boundary", {"label": "g"}, "admin")
    [job] = jobs(engine.db, iid)

    clock.advance(seconds=3601)
    assert engine.fire_due_timers()["fired"] == [iid]

    assert open_elements(engine.db, iid) == ["ask_by_phone"]
    assert jobs(engine.db, iid) == []
    assert [e.element_id for e in history(engine.db, iid, "service_job_cancelled")] == ["ask_crm"]
    assert engine.run_async_task(job.id)["ran"] is False
    assert CALLS == []


def test_bad_async_properties_are_validation_errors(engine, tmp_path):
    text = bpmn_path("async_basic.bpmn").read_text().replace('name="retryBackoff" value="PT10S"',
                                                            'name="retryBackoff" value="ten seconds"')
    bad = tmp_path / "bad_async.bpmn"
    bad.write_text(text)
    library = engine.validate([bad])
    assert any("retryBackoff" in str(p) and "ISO duration" in str(p) for p in library.errors), library.problems
    with pytest.raises(LibraryInvalid):
        engine.deploy([bad])


# --- a real worker, killed in the middle of the operation ----------------------------------


@pytest.fixture
def worker_env(tmp_path, monkeypatch):
    import redis
    from support import redis_server_url, settings_for

    url = redis_server_url()
    client = redis.Redis.from_url(url)
    client.flushdb()
    settings = settings_for(tmp_path, monkeypatch, redis_url=url)
    monkeypatch.setenv("HOTLINE_TEST_PAUSE_FILE", str(tmp_path / "pause"))  # test.pause run here writes there too
    h = Hotline(settings)
    upgrade(h.db)
    h.engine.deploy([bpmn_path("async_pause.bpmn")])
    started: list[WorkerProcess] = []

    def worker(sweep_seconds: float = 60) -> WorkerProcess:
        w = WorkerProcess(settings, url, tmp_path, sweep_seconds).start()
        started.append(w)
        return w

    yield h, worker, tmp_path / "pause", tmp_path / "pause.calls"
    for w in started:
        w.kill(signal.SIGTERM)
    h.close()
    client.flushdb()
    client.close()


@pytest.mark.redis
def test_a_worker_killed_mid_operation_leaves_the_instance_and_the_lease_lets_another_finish(worker_env):
    h, worker, pause, calls = worker_env
    pause.touch()
    first = worker(sweep_seconds=60).swept()  # the announced RQ job runs it, not the sweep
    iid = h.engine.start("async_pause", {"label": "x"}, "admin")
    version = instance(h.db, iid).lock_version
    _wait_for(lambda: calls.exists(), 15, "the worker to call the operation", first.log)

    first.kill(signal.SIGKILL)
    assert "hotline-service-job-" in first.log.read_text()  # the announced RQ job ran it

    assert status(h.db, iid) == "waiting"
    assert instance(h.db, iid).lock_version == version  # at its last committed state
    [job] = jobs(h.db, iid)
    assert (job.status, job.attempts) == ("running", 1)
    assert h.engine.run_due_async_tasks()["ran"] == []  # the dead worker's lease still holds

    pause.unlink()
    clock.advance(seconds=h.engine.service_job_lease_seconds + 1)
    assert h.engine.run_due_async_tasks()["ran"] == [job.id]  # lease expired: another run finishes it

    assert open_elements(h.db, iid) == ["review"]
    assert len(calls.read_text().splitlines()) == 2
    assert len(history(h.db, iid, "service_job_completed")) == 1


def test_in_a_scenario_an_asynchronous_task_runs_as_an_idle_worker_would(tmp_path):
    import shutil

    from app.engine.scenarios import run_paths

    lib = tmp_path / "library"
    (lib / "scenarios").mkdir(parents=True)
    shutil.copy(bpmn_path("async_basic.bpmn"), lib)
    (lib / "scenarios" / "async_basic.scenario.yaml").write_text(
        "process: async_basic\nscenarios:\n  - name: charged in the background\n"
        "    start: {data: {label: s, amount: 2}}\n"
        "    steps:\n      - expect: {tasks: [review], data: {charged: {label: s, amount: 4}}}\n")
    [result] = run_paths(lib / "scenarios", None)
    assert result.passed, result.difference
    assert len(CALLS) == 1


def test_a_managers_retry_that_fails_again_says_so_and_keeps_the_incident_open(engine, deploy):
    clock.freeze(T0)
    deploy("async_camunda.bpmn")  # retries 0: the first failure gives up
    iid = engine.start("async_camunda", {"label": "h"}, "admin")
    [job] = jobs(engine.db, iid)
    PLAN.extend([RuntimeError("still down"), RuntimeError("still down")])
    [incident_id] = [engine.run_async_task(job.id)["incident_id"]]

    with pytest.raises(StepFailed) as failed:
        engine.retry_incident(incident_id, "zhang.min")

    assert failed.value.incident_id == incident_id and "still down" in failed.value.message
    [incident] = incidents(engine.db, iid)
    assert (incident.status, incident.attempts) == ("open", 2)
    assert status(engine.db, iid) == "error" and len(CALLS) == 2

    engine.retry_incident(incident_id, "zhang.min")  # the third call succeeds

    assert [i.status for i in incidents(engine.db, iid)] == ["resolved"]
    assert open_elements(engine.db, iid) == ["review"] and len(CALLS) == 3
