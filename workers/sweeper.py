"""The periodic sweep: whatever Redis lost, the database says what is due, and this does it.

Every kind of background work has one sweep step here (the RQ job is only its fast path):
due timers, expired messages, due schedules (timer start events), the notification outbox.
Add a kind with one line in ``steps()``. A step that fails is logged and the others still run.
Several workers may sweep at once: every step claims its rows with locks the others skip.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .notify import send_due as send_due_notifications

log = logging.getLogger("hotline.sweeper")


class Sweeper:
    def __init__(self, engine, interval: float, stop: threading.Event, timer_grace_seconds: float = 0.0):
        self.engine = engine
        self.interval = interval
        self.stop = stop
        # Timers due less than this long ago are left to their RQ jobs (see timers.fire_due).
        self.timer_grace_seconds = timer_grace_seconds

    def steps(self) -> list[tuple[str, Callable[[], Any]]]:
        """(name, call) of every sweep step, in the order they run."""
        engine = self.engine
        return [
            ("timers", lambda: engine.fire_due_timers(grace_seconds=self.timer_grace_seconds)),
            ("messages_expired", engine.expire_messages),
            ("schedules", engine.start_due_schedules),
            ("service_jobs_and_messages", engine.run_due_background_work),  # async service tasks, thrown messages
            # SMS and e-mail whose job Redis lost (or never had)
            ("notifications", lambda: send_due_notifications(engine.db)),
        ]

    def sweep_once(self) -> dict:
        """Run every step once; {step name: its result} (an exception for a step that failed)."""
        results: dict[str, Any] = {}
        for name, call in self.steps():
            began = time.perf_counter()
            try:
                results[name] = call()
            except Exception as exc:  # noqa: BLE001 - one failing kind must not stop the others
                log.exception("sweep step %s failed", name)
                results[name] = exc
            if time.perf_counter() - began > max(self.interval, 1.0):
                log.warning("sweep step %s took %.1fs", name, time.perf_counter() - began)
        _log_work(results)
        return results

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.sweep_once()
            except Exception:  # keep sweeping: a database hiccup must not stop timers for good
                log.exception("sweep failed; trying again in %ss", self.interval)
            self.stop.wait(self.interval)


def _log_work(results: dict[str, Any]) -> None:
    timers = results.get("timers")
    if isinstance(timers, dict) and (timers["fired"] or timers["failed"]):
        log.info("timers fired %s, failed %s", timers["fired"], [f["instance_id"] for f in timers["failed"]])
    expired = results.get("messages_expired")
    if isinstance(expired, int) and expired:
        log.info("messages expired %s", expired)
    schedules = results.get("schedules")
    if isinstance(schedules, dict) and (schedules["started"] or schedules["failed"]):
        log.info("schedules started %s, failed %s", [(s["process"], s["instance_id"]) for s in schedules["started"]],
                 [f["schedule_id"] for f in schedules["failed"]])
