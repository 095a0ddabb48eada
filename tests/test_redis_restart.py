"""A Redis server that dies and comes back empty under load loses no due timer.

The scheduled RQ jobs live only in Redis; when it restarts without them, the worker must
reconnect (not exit) and its database sweep fires every timer that fell due, each once.
Runs a private redis-server on a free port, so the shared test server is never restarted.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
from conftest import bpmn_path
from engine_helpers import history, open_elements
from support import settings_for, unavailable
from test_workers import WorkerProcess, _wait_for

from app.container import Hotline
from app.migrate import upgrade


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, tmp_path):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            unavailable("Redis", "no redis-server binary to run a private server")
        self.port, self.dir, self.proc = _free_port(), tmp_path, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return self
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail("the private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def _exited(worker: WorkerProcess) -> str:
    return "the worker exited when Redis went away:\n" + worker.log.read_text()[-3000:]


def _listening(url: str) -> bool:
    import redis
    from rq import Worker

    return bool(Worker.all(connection=redis.Redis.from_url(url)))


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


@pytest.mark.redis
def test_redis_restarted_under_load_loses_no_due_timer(tmp_path, monkeypatch, private_redis):
    settings = settings_for(tmp_path, monkeypatch, redis_url=private_redis.url)
    h = Hotline(settings)
    try:
        upgrade(h.db)
        h.engine.deploy([bpmn_path("timer_wait.bpmn")])
        worker = WorkerProcess(settings, private_redis.url, tmp_path, sweep_seconds=1).start()
        try:
            _wait_for(lambda: _listening(private_redis.url), 20, "the worker to listen on its queues", worker.log)
            # Timers falling due over the next seconds, each with its RQ job in the private Redis.
            early = [h.engine.start("timer_wait", {"wait_for": "PT1S", "label": f"a{n}"}, "admin") for n in range(10)]
            late = [h.engine.start("timer_wait", {"wait_for": "PT3S", "label": f"b{n}"}, "admin") for n in range(10)]
            private_redis.kill()  # every scheduled job is lost; the worker's connection breaks
            during = [h.engine.start("timer_wait", {"wait_for": "PT1S", "label": f"c{n}"}, "admin") for n in range(5)]
            time.sleep(2)
            assert worker.proc.poll() is None, _exited(worker)
            private_redis.start()  # back, empty
            every = early + late + during
            _wait_for(lambda: all(open_elements(h.db, i) == ["after"] for i in every), 30,
                      "every timer to fire after the Redis restart", worker.log)
            assert worker.proc.poll() is None, _exited(worker)
            time.sleep(1.5)  # a duplicate (a late job, another sweep) would show up now
            assert [len(history(h.db, i, "timer_fired")) for i in every] == [1] * len(every)
        finally:
            worker.kill()
    finally:
        h.close()
