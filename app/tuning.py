"""Process-wide settings for long-running Hotline processes (web workers, RQ workers)."""
from __future__ import annotations

import gc
import logging

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def configure_logging() -> None:
    """Hotline's own INFO lines; SpiffWorkflow's only from WARNING up (at INFO it writes a
    line for every state change of every task: hundreds per ticket)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("spiff").setLevel(logging.WARNING)


def tune_gc() -> None:
    """Move everything loaded at start-up out of the collector's way and collect less often.

    An engine call allocates many short-lived objects (a workflow's tasks); with the default
    threshold the cyclic collector ran dozens of times per call on long tickets, re-scanning
    the whole application each time (bench/RESULTS.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
