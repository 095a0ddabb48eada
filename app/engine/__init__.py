"""The process engine: the only way process state changes.

``ProcessEngine`` bundles the database, the spec cache and settings; every method is
one transaction (see ``runtime.py``). Nothing here imports Flask, web, api or workers.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from app.db import Database

from . import (
    async_runner,
    deployment,
    instances,
    messages,
    outbox,
    queries,
    retry,
    schedules,
    spiff_limits,  # noqa: F401  (lifts SpiffWorkflow's depth limit before any workflow runs)
    tasks,
    timers,
)
from .calendars import CalendarProvider
from .library import Library
from .live import LiveWorkflows
from .specs import SpecCache


class ProcessEngine:
    def __init__(self, db: Database, forms_dir: Path | None = None, message_ttl_seconds: int = 7 * 24 * 3600,
                 live_workflows: int = 512, calendar_ttl_seconds: float = 30.0):
        self.db = db
        self.forms_dir = forms_dir
        self.message_ttl_seconds = message_ttl_seconds
        self.calendars = CalendarProvider(db, calendar_ttl_seconds)  # business calendars for scripts
        self.specs = SpecCache(self.calendars)
        self.live = LiveWorkflows(live_workflows)
        # After-commit hooks, called with [(instance_id, due_at)] for the timer rows a transaction
        # wrote; the worker wiring (app/container.py) schedules RQ jobs here. Never Redis in the engine.
        self.on_timers_changed: list[Callable[[list[tuple[int, datetime]]], None]] = []
        # After-commit hooks, called with [(kind, value)] that service operations announced
        # (app/services/context.after_commit: a notification to send, a message to deliver).
        self.on_committed: list[Callable[[list[tuple[str, Any]]], None]] = []
        # A worker holds an asynchronous service task this long; after it, another may take it over.
        self.service_job_lease_seconds = async_runner.DEFAULT_LEASE_SECONDS

    # process library
    def validate(self, paths: Iterable[str | Path]) -> Library:
        return deployment.validate_paths(self.db, paths, self.forms_dir)

    def deploy(self, paths: Iterable[str | Path], actor: str = "admin"):
        return deployment.deploy_paths(self.db, paths, self.forms_dir, actor)

    # instances
    def start(self, key: str, data: dict | None = None, actor: str = "system", **kw) -> int:
        return instances.start(self, key, data, actor, **kw)

    def suspend(self, instance_id: int, actor: str, reason: str = "") -> None:
        instances.suspend(self, instance_id, actor, reason)

    def resume(self, instance_id: int, actor: str) -> None:
        instances.resume(self, instance_id, actor)

    def terminate(self, instance_id: int, actor: str, reason: str = "") -> None:
        instances.terminate(self, instance_id, actor, reason)

    # human tasks
    def claim(self, task_id: int, actor: str) -> None:
        tasks.claim(self, task_id, actor)

    def unclaim(self, task_id: int, actor: str) -> None:
        tasks.unclaim(self, task_id, actor)

    def assign(self, task_id: int, assignee: str, actor: str) -> None:
        tasks.assign(self, task_id, assignee, actor)

    def complete(self, task_id: int, actor: str, data: dict | None = None) -> None:
        tasks.complete(self, task_id, actor, data)

    # events from outside and from time
    def correlate(self, name: str, keys: dict | None = None, payload: dict | None = None,
                  actor: str = "system") -> messages.Correlated:
        return messages.correlate(self, name, keys, payload, actor)

    def fire_due_timers(self, limit: int = 500, grace_seconds: float = 0.0) -> dict:
        return timers.fire_due(self, limit, grace_seconds)

    def fire_instance_timers(self, instance_id: int, actor: str = "system") -> bool:
        """Fire one instance's due timers (a worker job); does nothing when none is due.

        An instance someone else holds right now is skipped, not waited for: that holder is the
        sweep firing it, or an action whose engine run fires due timers too (and the sweep is
        the safety net). Waiting queued every job of a burst behind the sweep (bench/timers.py)."""
        return timers.fire_instance_timers(self, instance_id, actor, only_if_due=True, skip_locked=True)

    def start_due_schedules(self, limit: int = 100) -> dict:
        """Start the processes whose timer start event is due (schedules); see schedules.py."""
        return schedules.start_due(self, limit)

    def start_schedule_if_due(self, schedule_id: int) -> int | None:
        return schedules.start_schedule_if_due(self, schedule_id)

    def run_async_task(self, job_id: int) -> dict:
        """Run one asynchronous service task's job (worker job or sweep); safe to run twice."""
        return async_runner.run(self, job_id)

    def run_due_async_tasks(self, limit: int = 100) -> dict:
        return async_runner.run_due(self, limit)

    def deliver_thrown_message(self, message_id: int) -> dict | None:
        """Deliver one message a process threw (a worker job); None when delivered already."""
        return outbox.deliver(self, message_id)

    def deliver_thrown_messages(self, limit: int = 100) -> dict:
        return outbox.deliver_due(self, limit)

    def run_due_background_work(self) -> dict:
        """The sweep's share of the engine queue: due service tasks, undelivered thrown messages."""
        return {"service_jobs": self.run_due_async_tasks(), "messages": self.deliver_thrown_messages()}

    def expire_messages(self) -> int:
        return messages.expire_buffered(self)

    def retry_incident(self, incident_id: int, actor: str) -> dict:
        return retry.retry(self, incident_id, actor)

    # reading
    def instance_detail(self, instance_id: int) -> dict:
        with self.db.transaction() as s:
            return queries.instance_detail(s, self, instance_id)

    def task_detail(self, task_id: int) -> dict:
        with self.db.transaction() as s:
            return queries.task_detail(s, self, task_id)


__all__ = ["ProcessEngine", "Library"]
