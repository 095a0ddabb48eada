"""Running asynchronous service tasks: what a worker job and the sweep do with a service_job row.

1. Claim the row with a conditional UPDATE (pending and due, or running with an expired
   lease): one worker wins, the others change nothing. Claiming counts an attempt and takes
   a lease, so a worker killed mid-way (SIGKILL) leaves the row to the next claim once the
   lease has expired; the instance stays at its last committed state meanwhile.
2. Call the operation OUTSIDE the instance's transaction. An operation that declares
   ``_session`` gets a transaction of its own, and the result is stored in the row in that
   same transaction (its writes and "it ran" commit together, exactly once). An operation
   without ``_session`` (an outside system) gets ``_idempotency_key`` (when it declares it):
   the same for every attempt of the task, so it can dedupe the one window left, a worker
   dying after the outside call and before the result was stored.
3. In one engine transaction: complete the task with the result (result variable as for
   synchronous service tasks) and run the engine on.

A failing operation is retried with exponential backoff (``retryBackoff`` x 2^(attempt-1));
when its attempts are used up, or it raises ``PermanentError``, the task follows its error
boundary event (same error code, else catch-all), else the instance gets an incident whose
retry runs the operation again.
"""
from __future__ import annotations

import inspect
import logging
import os
import socket
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from app.errors import Conflict, HotlineError, IllegalState, NotFound, StepFailed
from app.models import InstanceStatus, ProcessInstance
from app.models.async_work import ServiceJob, ServiceJobStatus
from app.services import context as service_context
from app.services import registry
from app.services.failures import PermanentError

from . import clock
from .async_tasks import ServiceTaskFailed, complete_with_result, decode, encode, throw_error
from .runtime import announce_committed, error_text, run_on_instance
from .step import Step

log = logging.getLogger("hotline.service_jobs")

DEFAULT_LEASE_SECONDS = 300.0
CONTINUE_AFTER_SECONDS = 60.0  # a DONE row this old lost its worker before the instance moved on
CONFLICT_RETRIES = 5
_RUNNABLE_INSTANCE = (InstanceStatus.WAITING, InstanceStatus.ERROR)


class _LeaseLost(Exception):
    """Another worker took the job over (our lease expired): our result must not count."""


def _owner() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _lease(ctx) -> timedelta:
    return timedelta(seconds=float(getattr(ctx, "service_job_lease_seconds", DEFAULT_LEASE_SECONDS)))


def _due_clause(now):
    return or_(and_(ServiceJob.status == ServiceJobStatus.PENDING, ServiceJob.next_attempt_at <= now),
               and_(ServiceJob.status == ServiceJobStatus.RUNNING, ServiceJob.lease_expires_at < now))


def _runnable_instances():
    return select(ProcessInstance.id).where(ProcessInstance.status.in_(_RUNNABLE_INSTANCE))


def _claim(ctx, job_id: int, owner: str) -> ServiceJob | None:
    now = clock.now()
    with ctx.db.transaction() as s:
        claimed = s.execute(
            update(ServiceJob)
            .where(ServiceJob.id == job_id, _due_clause(now), ServiceJob.instance_id.in_(_runnable_instances()))
            .values(status=ServiceJobStatus.RUNNING, lease_owner=owner, lease_expires_at=now + _lease(ctx),
                    attempts=ServiceJob.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)).rowcount
        if claimed != 1:
            return None
        return s.get(ServiceJob, job_id)


def _store_result(s, job_id: int, owner: str, result: Any) -> None:
    stored = s.execute(
        update(ServiceJob).where(ServiceJob.id == job_id, ServiceJob.status == ServiceJobStatus.RUNNING,
                                 ServiceJob.lease_owner == owner)
        .values(status=ServiceJobStatus.DONE, result={"value": encode(result)}, lease_owner=None,
                lease_expires_at=None, last_error=None, updated_at=clock.now())
        .execution_options(synchronize_session=False)).rowcount
    if stored != 1:
        raise _LeaseLost(f"service job {job_id}: another worker took it over")


def idempotency_key(job: ServiceJob) -> str:
    """The same for every attempt of one waiting task (and for a manager's retry of it)."""
    return f"hotline-{job.instance_id}-{job.spiff_task_id}"


def _call(ctx, job: ServiceJob, owner: str) -> None:
    op = registry.get(job.operation)
    if op is None:
        raise PermanentError(f"unknown service operation {job.operation!r}")
    params = dict(decode(job.params) or {})
    extras = {"_idempotency_key": idempotency_key(job), "_instance_id": job.instance_id}
    declared = inspect.signature(op.func).parameters
    params.update({k: v for k, v in extras.items() if k in declared})
    if op.needs_session:
        with ctx.db.transaction() as s, service_context.bound(s, job.instance_id) as bound:
            result = op.func(**params, _session=s)
            _store_result(s, job.id, owner, result)
        announce_committed(ctx, bound.announcements)
        return
    result = op.func(**params)
    with ctx.db.transaction() as s:
        _store_result(s, job.id, owner, result)


def run(ctx, job_id: int, *, owner: str | None = None) -> dict:
    """Run one service job if it is due (a job or the sweep); running it twice changes nothing."""
    owner = owner or _owner()
    with ctx.db.transaction() as s:
        row = s.get(ServiceJob, job_id)
        if row is None:
            return {"job_id": job_id, "ran": False, "reason": "gone"}
        done_already = row.status == ServiceJobStatus.DONE
    if not done_already:
        job = _claim(ctx, job_id, owner)
        if job is None:
            return {"job_id": job_id, "ran": False, "reason": "not due, or another worker runs it"}
        try:
            _call(ctx, job, owner)
        except _LeaseLost as exc:
            log.warning("%s", exc)
            return {"job_id": job_id, "ran": True, "reason": "lease lost"}
        except Exception as exc:  # noqa: BLE001 - the operation failed: retry, boundary or incident
            return _failed(ctx, job, owner, exc)
    return _continue(ctx, job_id)


def _continue(ctx, job_id: int) -> dict:
    holder: dict[str, Any] = {}

    def locate(s) -> int:
        row = s.get(ServiceJob, job_id, populate_existing=True)
        if row is None or row.status != ServiceJobStatus.DONE:
            raise _Passed()
        holder["instance_id"], holder["incident_id"] = row.instance_id, row.incident_id
        return row.instance_id

    def action(step: Step) -> bool:
        row = step.session.get(ServiceJob, job_id, populate_existing=True)
        if row is None or row.status != ServiceJobStatus.DONE:
            return False
        return complete_with_result(step, row, decode((row.result or {}).get("value")))

    for attempt in range(CONFLICT_RETRIES):
        try:
            with ctx.db.transaction() as s:
                row = s.get(ServiceJob, job_id)
                incident_id = row.incident_id if row is not None else None
            moved = run_on_instance(ctx, locate, "system", action, resolve_incident_id=incident_id,
                                    incident_action={"name": "continue_service_job", "job_id": job_id})
            return {"job_id": job_id, "ran": True, "completed": bool(moved), "instance_id": holder.get("instance_id")}
        except _Passed:
            return {"job_id": job_id, "ran": True, "completed": False}
        except Conflict:
            if attempt == CONFLICT_RETRIES - 1:
                raise
        except StepFailed as exc:  # a step after the task failed: the result stays, the retry continues
            _mark_failed(ctx, job_id, exc.incident_id, exc.message)
            return {"job_id": job_id, "ran": True, "completed": False, "incident_id": exc.incident_id}
    return {"job_id": job_id, "ran": True, "completed": False}


class _Passed(HotlineError):
    """Nothing to continue: the job is gone or not done."""


def _mark_failed(ctx, job_id: int, incident_id: int | None, error: str) -> None:
    with ctx.db.transaction() as s:
        row = s.get(ServiceJob, job_id)
        if row is not None:
            row.status, row.incident_id, row.last_error = ServiceJobStatus.FAILED, incident_id, error[:4000]
            row.lease_owner = row.lease_expires_at = None
            row.updated_at = clock.now()


def _failed(ctx, job: ServiceJob, owner: str, exc: Exception) -> dict:
    permanent = isinstance(exc, PermanentError)
    text = error_text(exc) if not permanent else exc.message
    now = clock.now()
    with ctx.db.transaction() as s:
        row = s.get(ServiceJob, job.id)
        if row is None or row.status != ServiceJobStatus.RUNNING or row.lease_owner != owner:
            return {"job_id": job.id, "ran": True, "reason": "lease lost"}
        row.last_error = text[:4000]
        if not permanent and row.attempts < row.max_attempts:
            row.status = ServiceJobStatus.PENDING
            row.next_attempt_at = now + timedelta(seconds=row.backoff_seconds * 2 ** (row.attempts - 1))
            row.lease_owner = row.lease_expires_at = None
            row.updated_at = now
            retry_at, attempts = row.next_attempt_at, row.attempts
        else:
            retry_at, attempts = None, row.attempts
    if retry_at is not None:
        log.info("service job %s (%s) failed (attempt %s), retrying at %s: %s", job.id, job.operation, attempts,
                 retry_at.isoformat(), text)
        announce_committed(ctx, [("service_job", (job.id, retry_at))])
        return {"job_id": job.id, "ran": True, "failed": text, "retry_at": retry_at}
    return _give_up(ctx, job, text, getattr(exc, "code", None) if permanent else None, attempts, permanent)


def _give_up(ctx, job: ServiceJob, text: str, code: str | None, attempts: int, permanent: bool) -> dict:
    why = "failed permanently" if permanent else f"failed {attempts} time(s)"
    error = {"message": text, "code": code, "operation": job.operation, "element": job.element_id,
             "attempts": attempts}

    def action(step: Step) -> str | None:
        row = step.session.get(ServiceJob, job.id, populate_existing=True)
        if row is None:
            return None
        boundary = throw_error(step, row, error)
        if boundary is None:
            raise ServiceTaskFailed(f"service operation {job.operation} {why}: {text}", job.element_id)
        return boundary

    for attempt in range(CONFLICT_RETRIES):
        try:
            boundary = run_on_instance(ctx, job.instance_id, "system", action, resolve_incident_id=job.incident_id,
                                       incident_action={"name": "retry_service_job", "job_id": job.id})
        except Conflict:  # someone changed the instance meanwhile: look again
            if attempt == CONFLICT_RETRIES - 1:
                raise
            continue
        except StepFailed as exc:
            _mark_failed(ctx, job.id, exc.incident_id, text)
            return {"job_id": job.id, "ran": True, "failed": text, "incident_id": exc.incident_id}
        return {"job_id": job.id, "ran": True, "failed": text, "boundary": boundary}
    return {"job_id": job.id, "ran": True, "failed": text}


def retry(ctx, incident_id: int, action: dict, actor: str) -> dict:
    """A manager's retry of a failed service task: run the operation once more now (failing
    again counts on the same incident and raises ``StepFailed``, like any retry), or, when only
    the steps after it failed, continue with the result already kept."""
    job_id = action.get("job_id")
    with ctx.db.transaction() as s:
        row = s.get(ServiceJob, job_id, with_for_update=True)
        if row is None:
            raise IllegalState("the process no longer waits at this service task")
        if row.status == ServiceJobStatus.RUNNING and row.lease_expires_at and row.lease_expires_at > clock.now():
            raise Conflict("a worker is running this service task right now")
        row.incident_id = incident_id
        row.lease_owner = row.lease_expires_at = None
        row.updated_at = clock.now()
        if action.get("name") == "continue_service_job" and row.result is not None:
            row.status = ServiceJobStatus.DONE
        else:
            # one attempt left: the manager sees the outcome now, not after a round of backoffs
            row.status, row.attempts, row.next_attempt_at = ServiceJobStatus.PENDING, row.max_attempts - 1, clock.now()
            row.result = None
        instance_id = row.instance_id
    outcome = run(ctx, job_id)
    log.info("%s retried service job %s: %s", actor, job_id, outcome)
    if outcome.get("incident_id"):
        raise StepFailed(f"step {row.element_id} failed again: {outcome.get('failed') or 'see the incident'}",
                         row.element_id, outcome["incident_id"])
    shown = {k: (v.isoformat() if k == "retry_at" else v) for k, v in outcome.items()
             if k in ("completed", "failed", "retry_at", "boundary")}
    return {"incident_id": incident_id, "instance_id": instance_id, **shown}


def due_job_ids(ctx, limit: int = 100) -> list[int]:
    now = clock.now()
    stale = now - timedelta(seconds=CONTINUE_AFTER_SECONDS)
    with ctx.db.transaction() as s:
        return list(s.scalars(
            select(ServiceJob.id)
            .where(or_(_due_clause(now),
                       and_(ServiceJob.status == ServiceJobStatus.DONE, ServiceJob.updated_at < stale)),
                   ServiceJob.instance_id.in_(_runnable_instances()))
            .order_by(ServiceJob.next_attempt_at, ServiceJob.id).limit(limit)))


def run_due(ctx, limit: int = 100) -> dict:
    """The sweep: run every due job (claims make several sweepers split them)."""
    ran, failed = [], []
    for job_id in due_job_ids(ctx, limit):
        try:
            outcome = run(ctx, job_id)
        except (HotlineError, NotFound) as exc:
            failed.append({"job_id": job_id, "error": str(exc)})
            continue
        if outcome.get("ran"):
            ran.append(job_id)
    if ran or failed:
        log.info("sweep: service jobs run %s, failed %s", ran, [f["job_id"] for f in failed])
    return {"ran": ran, "failed": failed}
