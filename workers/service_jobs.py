"""RQ jobs of the engine queue: run an asynchronous service task, deliver a thrown message.

Both take a database id and are safe to run twice: the engine claims the row first, so a
duplicate (or a run the sweep got to first) changes nothing. A failing operation is retried
by the engine itself (backoff in the row), not by RQ; RQ's retries only cover trouble
reaching the database.
"""
from __future__ import annotations

import logging

from app.errors import HotlineError

from .jobs import hotline

log = logging.getLogger("hotline.jobs")


def run_service_job(job_id: int) -> dict:
    try:
        outcome = hotline().engine.run_async_task(job_id)
    except HotlineError as exc:  # the instance changed under us (suspended, ended): nothing to do now
        log.warning("service job %s: %s", job_id, exc)
        return {"job_id": job_id, "ran": False, "reason": str(exc)}
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in outcome.items()}


def deliver_message(message_id: int) -> dict:
    outcome = hotline().engine.deliver_thrown_message(message_id)
    return {"message_id": message_id, **(outcome or {"delivered": False})}
