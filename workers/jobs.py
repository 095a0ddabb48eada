"""RQ job functions: thin wrappers that call the engine with ids, safe to run twice.

The worker process sets the shared ``Hotline`` with ``use()``; a job that runs in a
forked work horse drops the connections it inherited (never share a socket across
processes) and opens its own.
"""
from __future__ import annotations

import logging
import os

from sqlalchemy import select

from app.config import Settings
from app.container import Hotline
from app.engine.incidents import record_incident
from app.errors import StepFailed
from app.models import ProcessInstance, ProcessModel, ProcessVersion
from app.scheduling import RETRIES

log = logging.getLogger("hotline.jobs")

_hotline: Hotline | None = None
_pid: int | None = None


def use(hotline: Hotline) -> None:
    global _hotline, _pid
    _hotline, _pid = hotline, os.getpid()


def hotline() -> Hotline:
    global _hotline, _pid
    if _hotline is None:
        use(Hotline(Settings.from_env()))
    elif _pid != os.getpid():  # a forked work horse: keep the parent's pooled connections untouched
        if "db" in _hotline.__dict__:
            _hotline.db.engine.dispose(close=False)
        _hotline.__dict__.pop("scheduling_redis", None)
        _pid = os.getpid()
    return _hotline


def fire_timers(instance_id: int, due_at: str | None = None) -> dict:
    """Fire the instance's due timers. Nothing due (fired already, by the sweep or an
    earlier run of this job): nothing changes. A failing step is an incident already,
    so the job ends there instead of retrying; other errors raise and RQ retries."""
    try:
        fired = hotline().engine.fire_instance_timers(instance_id, actor="system")
    except StepFailed as exc:
        log.warning("timer of instance %s failed: incident %s: %s", instance_id, exc.incident_id, exc.message)
        return {"instance_id": instance_id, "fired": False, "incident_id": exc.incident_id}
    return {"instance_id": instance_id, "fired": fired, "due_at": due_at}


def job_failed(job, connection, exc_type, exc_value, tb) -> None:
    """RQ failure callback: once the retries are used up, the failure becomes an incident."""
    if job.retries_left:
        return
    if job.func_name != "workers.jobs.fire_timers" or not job.args:
        return
    instance_id = job.args[0]
    try:
        engine = hotline().engine
        with engine.db.transaction() as s:
            key = s.scalar(select(ProcessModel.key).join(ProcessVersion, ProcessVersion.model_id == ProcessModel.id)
                           .join(ProcessInstance, ProcessInstance.version_id == ProcessVersion.id)
                           .where(ProcessInstance.id == instance_id))
        if key is None:
            return
        error = f"the timer job failed {RETRIES + 1} times; last error: {exc_type.__name__}: {exc_value}"
        record_incident(engine, instance_id, key, None, error, {"name": "fire_timers", "actor": "system"}, "worker")
    except Exception:  # noqa: BLE001 - the database may be what failed; the sweep still fires the timer
        log.exception("could not record an incident for failed job %s", job.id)
