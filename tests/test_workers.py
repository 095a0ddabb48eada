"""Workers and timers: several sweepers fire each timer once; RQ jobs fire timers on time;
a killed worker or a flushed Redis loses nothing (the sweep recovers it), duplicates nothing."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, bpmn_path
from engine_helpers import T0, history, open_elements, status, timers
from sqlalchemy import select
from support import redis_server_url, settings_for

import workers.testing_ops  # noqa: F401  (registers test.pause, which timer_wait.bpmn calls)
from app.container import Hotline
from app.engine import ProcessEngine, clock
from app.migrate import upgrade
from app.models import Incident, ProcessInstance
from app.scheduling import ENGINE_QUEUE, run_at, schedule_timer_jobs, timer_job_id
from workers import jobs

# --- several sweepers at once (PostgreSQL: row locks that others skip) ----------------------


def _at_once(n: int, action):
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = action(i)
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test looks at
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.postgres
def test_concurrent_sweepers_fire_every_timer_exactly_once(pg_db, forms_dir):
    clock.freeze(T0)
    ProcessEngine(pg_db, forms_dir).deploy([bpmn_path("boundary_timers.bpmn")])
    starter = ProcessEngine(pg_db, forms_dir)
    ids = [starter.start("timer_escalation", {}, "admin") for _ in range(40)]
    clock.advance(seconds=2 * 3600 + 1)
    sweepers = [ProcessEngine(pg_db, forms_dir) for _ in range(4)]  # four workers, each its own engine

    results = _at_once(len(sweepers), lambda i: sweepers[i].fire_due_timers())

    assert not [r for r in results if isinstance(r, Exception)], results
    fired = [iid for r in results for iid in r["fired"]]
    assert sorted(fired) == ids  # none lost, none fired by two sweepers
    assert sum(1 for r in results if r["fired"]) >= 2  # the sweepers shared the work
    for iid in ids:
        assert len(history(pg_db, iid, "timer_fired")) == 1
        assert timers(pg_db, iid) == []
        assert open_elements(pg_db, iid) == ["escalate"]
    assert starter.fire_due_timers()["fired"] == []


@pytest.mark.postgres
def test_a_job_and_sweepers_racing_on_one_instance_fire_it_once(pg_db, forms_dir):
    clock.freeze(T0)
    ProcessEngine(pg_db, forms_dir).deploy([bpmn_path("boundary_timers.bpmn")])
    engines = [ProcessEngine(pg_db, forms_dir) for _ in range(4)]
    for _ in range(5):
        iid = engines[0].start("timer_escalation", {}, "admin")
        clock.advance(seconds=2 * 3600 + 1)
        # two jobs (waiting for the lock) and two sweeps (skipping it) at the same moment
        results = _at_once(4, lambda i, iid=iid: engines[i].fire_instance_timers(iid) if i < 2
                           else iid in engines[i].fire_due_timers()["fired"])
        assert results.count(True) == 1, results
        assert len(history(pg_db, iid, "timer_fired")) == 1


# --- the after-commit hook and the job function (no Redis needed) ---------------------------


def test_engine_announces_new_timers_after_commit_and_survives_a_failing_hook(engine, deploy):
    clock.freeze(T0)
    deploy("boundary_timers.bpmn")
    seen = []
    engine.on_timers_changed.append(seen.append)
    engine.on_timers_changed.append(lambda _: (_ for _ in ()).throw(ConnectionError("Redis is down")))

    iid = engine.start("timer_escalation", {}, "admin")

    assert [(i, d.astimezone(UTC) if d.tzinfo else d.replace(tzinfo=UTC)) for [(i, d)] in seen] == [
        (iid, T0 + timedelta(hours=2))]
    assert len(timers(engine.db, iid)) == 1  # committed although a hook failed
    clock.advance(seconds=2 * 3600 + 1)
    assert engine.fire_due_timers()["fired"] == [iid]
    assert len(seen) == 1  # the escalation path leaves no timer: nothing more to announce


@pytest.fixture
def hotline(tmp_path, monkeypatch):
    h = Hotline(settings_for(tmp_path, monkeypatch))
    upgrade(h.db)
    h.engine.deploy([bpmn_path("timer_wait.bpmn"), bpmn_path("boundary_timers.bpmn")])
    jobs.use(h)
    yield h
    jobs.use(None)
    h.close()


def _lock_version(db, iid: int) -> int:
    with db.transaction() as s:
        return s.scalar(select(ProcessInstance.lock_version).where(ProcessInstance.id == iid))


def test_fire_timers_job_is_idempotent(hotline):
    clock.freeze(T0)
    iid = hotline.engine.start("timer_wait", {"wait_for": "PT5M", "label": "x"}, "admin")
    assert jobs.fire_timers(iid)["fired"] is False  # not due yet: nothing changes
    before = _lock_version(hotline.db, iid)
    assert _lock_version(hotline.db, iid) == before

    clock.advance(seconds=301)
    assert jobs.fire_timers(iid)["fired"] is True
    after = _lock_version(hotline.db, iid)
    assert open_elements(hotline.db, iid) == ["after"]
    assert jobs.fire_timers(iid)["fired"] is False  # the second run changes nothing
    assert _lock_version(hotline.db, iid) == after
    assert len(history(hotline.db, iid, "timer_fired")) == 1


def test_a_failing_step_is_an_incident_and_the_job_does_not_retry(hotline):
    clock.freeze(T0)
    iid = hotline.engine.start("timer_wait", {"wait_for": "PT1M", "label": "boom"}, "admin")
    clock.advance(seconds=61)
    result = jobs.fire_timers(iid)  # returns (RQ counts it done) instead of raising into a retry
    assert result["fired"] is False and result["incident_id"]
    assert status(hotline.db, iid) == "error"
    assert len(timers(hotline.db, iid)) == 1  # rolled back: still at its last committed state


def test_a_job_that_keeps_failing_becomes_an_incident_after_its_retries(hotline):
    clock.freeze(T0)
    iid = hotline.engine.start("timer_wait", {"wait_for": "PT1M", "label": "x"}, "admin")
    job = SimpleNamespace(id="j", func_name="workers.jobs.fire_timers", args=[iid, None], retries_left=2)
    jobs.job_failed(job, None, ConnectionError, ConnectionError("db gone"), None)
    with hotline.db.transaction() as s:
        assert s.scalars(select(Incident)).all() == []  # retries left: RQ tries again
    job.retries_left = 0
    jobs.job_failed(job, None, ConnectionError, ConnectionError("db gone"), None)
    with hotline.db.transaction() as s:
        [incident] = s.scalars(select(Incident)).all()
    assert (incident.instance_id, incident.action["name"]) == (iid, "fire_timers")
    assert "db gone" in incident.error
    assert status(hotline.db, iid) == "error"
    clock.advance(seconds=61)
    hotline.engine.retry_incident(incident.id, "admin")  # a manager's retry fires the timer
    assert open_elements(hotline.db, iid) == ["after"]


def test_an_unreachable_redis_never_fails_the_engine(tmp_path, monkeypatch):
    h = Hotline(settings_for(tmp_path, monkeypatch, redis_url="redis://127.0.0.1:1/0"))
    try:
        upgrade(h.db)
        h.engine.deploy([bpmn_path("timer_wait.bpmn")])
        started = time.monotonic()
        iid = h.engine.start("timer_wait", {"wait_for": "PT1H", "label": "x"}, "admin")
        assert time.monotonic() - started < 5
        assert len(timers(h.db, iid)) == 1
    finally:
        h.close()


# --- real Redis -----------------------------------------------------------------------------


@pytest.fixture
def redis_url():
    import redis

    url = redis_server_url()
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.mark.redis
def test_scheduling_collapses_duplicates_and_runs_after_the_due_time(redis_url):
    import redis
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    conn = redis.Redis.from_url(redis_url)
    due = datetime(2030, 1, 1, 9, 0, 0, 250000, tzinfo=UTC)
    ids = schedule_timer_jobs(conn, [(7, due), (7, due), (8, due)])
    assert ids[0] == ids[1] == timer_job_id(7, due) != ids[2]
    registry = ScheduledJobRegistry(queue=Queue(ENGINE_QUEUE, connection=conn))
    assert sorted(registry.get_job_ids()) == sorted({ids[0], ids[2]})
    assert registry.get_scheduled_time(ids[0]) == run_at(due) == datetime(2030, 1, 1, 9, 0, 1, tzinfo=UTC)
    conn.close()


@pytest.mark.redis
def test_engine_wiring_schedules_a_job_per_new_timer(tmp_path, monkeypatch, redis_url):
    import redis
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    h = Hotline(settings_for(tmp_path, monkeypatch, redis_url=redis_url))
    try:
        upgrade(h.db)
        h.engine.deploy([bpmn_path("timer_wait.bpmn")])
        iid = h.engine.start("timer_wait", {"wait_for": "PT1H", "label": "x"}, "admin")
        [row] = timers(h.db, iid)
        conn = redis.Redis.from_url(redis_url)
        registry = ScheduledJobRegistry(queue=Queue(ENGINE_QUEUE, connection=conn))
        assert registry.get_job_ids() == [timer_job_id(iid, row.due_at)]
        conn.close()
    finally:
        h.close()


class WorkerProcess:
    """`python -m workers` against the test's SQLite file and Redis db 15."""

    def __init__(self, settings, redis_url: str, tmp_path: Path, sweep_seconds: float):
        self.env = dict(os.environ, DATABASE_URL=settings.database_url, REDIS_URL=redis_url,
                        HOTLINE_INSTANCE_DIR=str(settings.instance_dir), HOTLINE_TEST_SERVICES="1",
                        HOTLINE_SWEEP_SECONDS=str(sweep_seconds),
                        HOTLINE_TEST_PAUSE_FILE=str(tmp_path / "pause"), PYTHONPATH=str(ROOT))
        self.log = tmp_path / "worker.log"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=self.env,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def swept(self, seconds: float = 20) -> WorkerProcess:
        """Wait until its sweep process did its first sweep (the next one is an interval away)."""
        from workers.sweep_process import FIRST_SWEEP_DONE

        _wait_for(lambda: self.log.exists() and FIRST_SWEEP_DONE in self.log.read_text(), seconds,
                  "the worker's first sweep", self.log)
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            if sig == signal.SIGKILL:
                # RQ's forking workers run each job in a horse with a process group of its own: a kill of the
                # worker's process group would leave the horse running the job. Kill every descendant.
                import psutil

                for child in psutil.Process(self.proc.pid).children(recursive=True):
                    try:
                        child.kill()
                    except psutil.NoSuchProcess:
                        pass
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def worker_env(tmp_path, monkeypatch, redis_url):
    settings = settings_for(tmp_path, monkeypatch, redis_url=redis_url)
    h = Hotline(settings)
    upgrade(h.db)
    h.engine.deploy([bpmn_path("timer_wait.bpmn")])
    started: list[WorkerProcess] = []

    def worker(sweep_seconds: float = 60) -> WorkerProcess:
        w = WorkerProcess(settings, redis_url, tmp_path, sweep_seconds).start()
        started.append(w)
        return w

    yield SimpleNamespace(h=h, worker=worker, pause=tmp_path / "pause", calls=tmp_path / "pause.calls",
                          tmp=tmp_path)
    for w in started:
        w.kill(signal.SIGTERM)
    h.close()


def _wait_for(predicate, seconds: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    detail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out after {seconds}s waiting for {what}\n{detail}")


@pytest.mark.redis
def test_a_worker_fires_a_timer_through_its_scheduled_job(worker_env):
    w = worker_env.worker(sweep_seconds=60).swept()  # the sweep stays out of the way: the job must do it
    iid = worker_env.h.engine.start("timer_wait", {"wait_for": "PT2S", "label": "x"}, "admin")
    _wait_for(lambda: open_elements(worker_env.h.db, iid) == ["after"], 12, "the timer to fire", w.log)
    assert len(history(worker_env.h.db, iid, "timer_fired")) == 1
    assert "hotline-timer-" in w.log.read_text()  # fired by the RQ job, not the sweep


@pytest.mark.redis
def test_a_worker_killed_mid_job_loses_nothing_and_duplicates_nothing(worker_env):
    db = worker_env.h.db
    worker_env.pause.touch()
    first = worker_env.worker(sweep_seconds=1)
    iid = worker_env.h.engine.start("timer_wait", {"wait_for": "PT1S", "label": "x"}, "admin")
    before = _lock_version(db, iid)
    _wait_for(lambda: worker_env.calls.exists(), 12, "the service call to start", first.log)

    first.kill(signal.SIGKILL)  # in the middle of the engine transaction
    assert status(db, iid) == "waiting"
    assert _lock_version(db, iid) == before  # still at its last committed state
    assert len(timers(db, iid)) == 1 and history(db, iid, "timer_fired") == []

    worker_env.pause.unlink()
    second = worker_env.worker(sweep_seconds=1)
    _wait_for(lambda: open_elements(db, iid) == ["after"], 12, "the restarted worker to fire it", second.log)
    time.sleep(1.5)  # give a duplicate (a retried job, another sweep) the chance to show up
    assert len(history(db, iid, "timer_fired")) == 1
    assert open_elements(db, iid) == ["after"]


@pytest.mark.redis
def test_a_flushed_redis_loses_no_timer(worker_env):
    import redis

    db = worker_env.h.db
    iid = worker_env.h.engine.start("timer_wait", {"wait_for": "PT1S", "label": "x"}, "admin")
    conn = redis.Redis.from_url(redis_server_url())
    conn.flushdb()  # the scheduled job is gone
    conn.close()
    w = worker_env.worker(sweep_seconds=1)
    _wait_for(lambda: open_elements(db, iid) == ["after"], 12, "the sweep to fire the timer", w.log)
    assert len(history(db, iid, "timer_fired")) == 1
