"""The worker's sweep process: restarted when it dies, gone when its worker is killed."""
from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from conftest import bpmn_path
from engine_helpers import open_elements
from support import settings_for
from test_redis_restart import RedisServer
from test_workers import WorkerProcess, _wait_for

from app.container import Hotline
from app.migrate import upgrade


def _sweepers(worker: WorkerProcess) -> list[psutil.Process]:
    try:
        children = psutil.Process(worker.proc.pid).children()
    except psutil.NoSuchProcess:
        return []
    sweepers = []
    for child in children:
        try:  # a killed sweeper stays a zombie until the worker reaps it: not a sweeper any more
            if child.status() != psutil.STATUS_ZOMBIE and "spawn" in " ".join(child.cmdline()):
                sweepers.append(child)
        except psutil.Error:
            continue
    return sweepers


@pytest.fixture
def worker(tmp_path, monkeypatch):
    redis = RedisServer(tmp_path).start()
    settings = settings_for(tmp_path, monkeypatch, redis_url=redis.url)
    h = Hotline(settings)
    upgrade(h.db)
    h.engine.deploy([bpmn_path("timer_wait.bpmn")])
    w = WorkerProcess(settings, redis.url, tmp_path, sweep_seconds=0.5).start()
    yield w, h, redis
    w.kill()
    h.close()
    redis.kill()


@pytest.mark.redis
def test_a_killed_sweep_process_is_started_again_and_sweeps(worker):
    w, h, redis = worker
    _wait_for(lambda: len(_sweepers(w)) == 1, 20, "the sweep process to start", w.log)
    [first] = _sweepers(w)
    first.kill()
    _wait_for(lambda: [p.pid for p in _sweepers(w)] not in ([], [first.pid]), 20, "a new sweep process", w.log)
    redis.kill()  # no RQ job can fire it: only the sweep can
    iid = h.engine.start("timer_wait", {"wait_for": "PT1S", "label": "x"}, "admin")
    _wait_for(lambda: open_elements(h.db, iid) == ["after"], 20, "the new sweep process to fire the timer", w.log)


@pytest.mark.redis
def test_the_sweep_process_ends_with_its_worker(worker):
    w, _, _ = worker
    _wait_for(lambda: len(_sweepers(w)) == 1, 20, "the sweep process to start", w.log)
    [sweeper] = _sweepers(w)
    os.kill(w.proc.pid, signal.SIGKILL)  # the worker alone, as an OOM killer would
    w.proc.wait(10)
    deadline = time.monotonic() + 10
    while _alive(sweeper) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(sweeper), "the sweep process outlived its worker"


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
