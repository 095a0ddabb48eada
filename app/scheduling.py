"""Timer jobs on RQ: after a commit, one job per timer row, scheduled for its due time.

The engine never talks to Redis; ``Hotline`` connects ``schedule_timer_jobs`` to the
engine's ``on_timers_changed`` hook. A job id is the instance id plus the due time, so
announcing the same timer twice schedules one job. Redis is the fast path only: when
it is unreachable the periodic sweep (``workers.sweeper``) fires the timer from the
database, so failures here are logged, never raised into the engine transaction.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from rq import Callback, Queue, Retry

ENGINE_QUEUE = "engine"
FIRE_TIMERS = "workers.jobs.fire_timers"
JOB_FAILED = "workers.jobs.job_failed"
# Retries with backoff for failures that are not the process's own (database or Redis
# hiccups, lock conflicts). A failing script is an incident at once (StepFailed), no retry.
RETRY_INTERVALS = [2, 10, 30, 120, 600]
RETRIES = len(RETRY_INTERVALS)


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def timer_job_id(instance_id: int, due_at: datetime) -> str:
    return f"hotline-timer-{instance_id}-{_aware(due_at).strftime('%Y%m%dT%H%M%S%f')}"


def run_at(due_at: datetime) -> datetime:
    """When to run the job: RQ's scheduler counts whole seconds (it truncates) and a timer
    fires once its due time has passed, so take the next whole second after ``due_at``."""
    return _aware(due_at).replace(microsecond=0) + timedelta(seconds=1)


def retry_policy() -> Retry:
    return Retry(max=RETRIES, interval=RETRY_INTERVALS)


def schedule_timer_jobs(connection, timers: Iterable[tuple[int, datetime]]) -> list[str]:
    """Schedule a ``fire_timers`` job on the engine queue for each (instance_id, due_at)."""
    queue = Queue(ENGINE_QUEUE, connection=connection)
    ids = []
    with connection.pipeline() as pipe:
        for instance_id, due_at in timers:
            job_id = timer_job_id(instance_id, due_at)
            queue.enqueue_at(run_at(due_at), FIRE_TIMERS, instance_id, _aware(due_at).isoformat(),
                             job_id=job_id, retry=retry_policy(), on_failure=Callback(JOB_FAILED),
                             result_ttl=3600, failure_ttl=7 * 24 * 3600, pipeline=pipe)
            ids.append(job_id)
        pipe.execute()
    return ids
