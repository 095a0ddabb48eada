"""The sweep's own process, and what every worker process sets up first.

The sweep runs in a process of its own, not a thread of the worker: RQ forks a work horse
for every job, and a fork taken while a sweep thread held a database connection or a pool
lock left the child waiting on that lock for ever (seen on SQLite as a job hanging at
BEGIN IMMEDIATE until its timeout). The sweep process never forks, so it may use threads.
Started with "spawn" (a fresh interpreter), so it inherits no connection either.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time

from app.config import Settings
from app.container import Hotline
from app.tuning import configure_logging, tune_gc

from . import jobs
from .sweeper import Sweeper

FIRST_SWEEP_DONE = "first sweep done; sweeping"  # tests wait for this line in the worker's log
log = logging.getLogger("hotline.worker")


def setup() -> Hotline:
    configure_logging()
    h = Hotline(Settings.from_env())
    jobs.use(h)
    if os.environ.get("HOTLINE_TEST_SERVICES") == "1":
        from . import testing_ops  # noqa: F401  (test-only service operations; see that module)
    tune_gc()
    return h


def sweep_forever(interval: float, parent_pid: int) -> None:
    """The sweep process: sweeps every ``interval`` seconds until its worker is gone."""
    h = setup()
    stop = threading.Event()

    def watch_parent() -> None:  # a SIGKILLed worker must not leave its sweeper running
        while not stop.wait(1.0):
            if os.getppid() != parent_pid:
                stop.set()

    threading.Thread(target=watch_parent, name="watch-parent", daemon=True).start()
    # The jobs fire timers on time; the sweep recovers what they missed, a few seconds later.
    grace = float(os.environ.get("HOTLINE_SWEEP_GRACE_SECONDS", "5"))
    sweeper = Sweeper(h.engine, interval, stop, timer_grace_seconds=grace)
    try:
        sweeper.sweep_once()  # at once: catch up with whatever fell due while no worker ran
    except Exception:  # noqa: BLE001 - the loop below tries again
        log.exception("the first sweep failed")
    log.info("%s every %ss", FIRST_SWEEP_DONE, interval)
    if not stop.wait(interval):
        sweeper.run()


def start_sweeper(interval: float) -> multiprocessing.Process:
    process = multiprocessing.get_context("spawn").Process(
        target=sweep_forever, args=(interval, os.getpid()), name="hotline-sweeper", daemon=True)
    process.start()
    return process


def keep_sweeping(process: multiprocessing.Process, interval: float, stop: threading.Event) -> None:
    """Start the sweep process again when it dies; it touches no database or lock of this process."""
    thread = threading.current_thread()
    while not stop.is_set():
        process.join(1.0)
        if process.is_alive() or stop.is_set():
            continue
        log.error("the sweep process stopped (exit code %s); starting it again", process.exitcode)
        time.sleep(1.0)
        process = start_sweeper(interval)
        thread.process = process  # type: ignore[attr-defined]  (main() stops the current one)


