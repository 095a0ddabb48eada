"""`python -m workers`: an RQ worker (with the scheduler) on the engine, telephony and notify queues.

It also sweeps the database for due timers and expired messages every few seconds
(the database is the source of truth for what is due; see design.md).
Run as many as you like, on any number of hosts, against one Redis and one database.
"""
from __future__ import annotations

import logging
import os
import threading

from rq import Queue, Worker

from app.config import Settings
from app.container import Hotline
from app.tuning import tune_gc

from . import jobs
from .sweeper import Sweeper

QUEUES = ("engine", "telephony", "notify")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    h = Hotline(Settings.from_env())
    jobs.use(h)
    if os.environ.get("HOTLINE_TEST_SERVICES") == "1":
        from . import testing_ops  # noqa: F401  (test-only service operations; see that module)
    tune_gc()
    stop = threading.Event()
    sweeper = Sweeper(h.engine, float(os.environ.get("HOTLINE_SWEEP_SECONDS", "2")), stop)
    threading.Thread(target=sweeper.run, name="sweeper", daemon=True).start()
    connection = h.redis
    worker = Worker([Queue(name, connection=connection) for name in QUEUES], connection=connection)
    try:
        worker.work(with_scheduler=True)
    finally:
        stop.set()


if __name__ == "__main__":
    main()
