"""The periodic sweep: fire due timers and drop expired messages, whatever Redis lost."""
from __future__ import annotations

import logging
import threading

log = logging.getLogger("hotline.sweeper")


class Sweeper:
    def __init__(self, engine, interval: float, stop: threading.Event):
        self.engine = engine
        self.interval = interval
        self.stop = stop

    def sweep_once(self) -> dict:
        result = self.engine.fire_due_timers()
        expired = self.engine.expire_messages()
        if result["fired"] or result["failed"] or expired:
            log.info("timers fired %s, failed %s; messages expired %s", result["fired"],
                     [f["instance_id"] for f in result["failed"]], expired)
        return result

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.sweep_once()
            except Exception:  # keep sweeping: a database hiccup must not stop timers for good
                log.exception("sweep failed; trying again in %ss", self.interval)
            self.stop.wait(self.interval)
