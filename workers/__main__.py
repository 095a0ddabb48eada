"""`python -m workers`: an RQ worker (with the scheduler) on the engine, telephony and notify queues.

It also sweeps the database for whatever is due (timers, schedules, asynchronous service
tasks, thrown messages, notifications) every few seconds: the database is the source of
truth, RQ jobs are the fast path (see design.md and sweeper.py).
Run as many as you like, on any number of hosts, against one Redis and one database.
The sweep runs in a process of its own (sweep_process.py says why); this process keeps only
a watchdog thread that starts it again if it dies.
"""
from __future__ import annotations

import logging
import os
import threading

from rq import Queue, SimpleWorker

from .sweep_process import keep_sweeping, setup, start_sweeper

QUEUES = ("engine", "telephony", "notify")
MAX_REDIS_WAIT = 10.0  # seconds between attempts to reach a Redis that went away
log = logging.getLogger("hotline.worker")


def main() -> None:
    h = setup()
    interval = float(os.environ.get("HOTLINE_SWEEP_SECONDS", "2"))
    stop = threading.Event()
    sweeper = start_sweeper(interval)
    watchdog = threading.Thread(target=keep_sweeping, args=(sweeper, interval, stop), name="sweeper-watchdog",
                                daemon=True)
    watchdog.start()
    try:
        work(h.redis, stop)
    finally:
        stop.set()
        current = watchdog.process if hasattr(watchdog, "process") else sweeper
        for process in {sweeper, current}:
            if process.is_alive():
                process.terminate()
                process.join(5)


def work(connection, stop: threading.Event) -> None:
    """Run the RQ worker until it is told to stop, through Redis outages.

    Redis may be down at start or go away mid-run (a restart, a failover). The worker then
    waits and connects again instead of exiting; meanwhile the sweep process keeps firing
    due timers from the database, so nothing that falls due waits for Redis.
    """
    import redis

    delay = 1.0
    while not stop.is_set():
        try:
            # Jobs run in this process (SimpleWorker), not in a work horse forked per job: a fork
            # cost each job a new database connection and a fresh parse of its process version,
            # 100-220 ms of CPU against ~20 ms for the engine step itself (bench/RESULTS.md, Timers).
            # A job that hangs is still ended by its timeout (SIGALRM in this, the main thread).
            # The maintenance pass also restarts RQ's scheduler process when a Redis outage killed
            # it; every minute instead of RQ's ten, so jobs scheduled later run on time again soon.
            worker = SimpleWorker([Queue(name, connection=connection) for name in QUEUES], connection=connection,
                                  maintenance_interval=60)
            worker.max_connection_wait_time = MAX_REDIS_WAIT  # RQ's own reconnect loop while dequeuing
            worker.work(with_scheduler=True)
            return  # told to stop (SIGTERM, SIGINT)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.error("Redis is unreachable (%s); the sweep keeps firing due timers; connecting again in %.0fs",
                      exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, MAX_REDIS_WAIT)


if __name__ == "__main__":
    main()
