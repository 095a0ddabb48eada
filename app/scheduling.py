"""RQ jobs announced after a commit: the fast path of all background work.

The engine never talks to Redis. ``Hotline`` (app/container.py) connects these functions to
the engine's after-commit hooks:

- timers (``on_timers_changed``): one ``fire_timers`` job per timer row, at its due time; the
  job id is the instance plus the due time, so announcing a timer twice schedules one job;
- asynchronous service tasks and thrown messages (``on_committed``, kinds ``service_job`` and
  ``message``): ``run_service_job`` at the attempt's time, ``deliver_message`` now;
- SMS and e-mail (``on_committed``, kind ``notification``): one ``send_notification`` job.

Every job is safe to run twice (it claims its database row first), and Redis is only the fast
path: when it is unreachable the workers' sweep (``workers.sweeper``) does the work from the
database, so failures here are logged by the caller, never raised into an engine transaction.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from rq import Callback, Queue, Retry

ENGINE_QUEUE = "engine"
FIRE_TIMERS = "workers.jobs.fire_timers"
JOB_FAILED = "workers.jobs.job_failed"
# Timer jobs: retries with backoff for failures that are not the process's own (database or Redis
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


# --- asynchronous service tasks and thrown messages (engine queue) ---------------------------

RUN_SERVICE_JOB = "workers.service_jobs.run_service_job"
DELIVER_MESSAGE = "workers.service_jobs.deliver_message"
SERVICE_RETRY_INTERVALS = [2, 10, 30]  # trouble reaching the database; the operation's own failures back off in the row
SERVICE_JOB_TIMEOUT_SECONDS = 240  # inside the service job lease (300 s): a job RQ gave up on never overlaps a retaker


def service_job_id(job_id: int, at: datetime) -> str:
    return f"hotline-service-job-{job_id}-{run_at(at).strftime('%Y%m%dT%H%M%S')}"


def message_job_id(message_id: int) -> str:
    return f"hotline-message-{message_id}"


def enqueue_engine_work(connection, announcements: Iterable[tuple[str, Any]]) -> list[str]:
    """Schedule a job for every service job and thrown message announced; others are not ours."""
    work = [(kind, value) for kind, value in announcements if kind in ("service_job", "message")]
    if not work:
        return []
    queue = Queue(ENGINE_QUEUE, connection=connection)
    retry = Retry(max=len(SERVICE_RETRY_INTERVALS), interval=SERVICE_RETRY_INTERVALS)
    ids = []
    with connection.pipeline() as pipe:
        for kind, value in work:
            if kind == "service_job":
                job_id, at = value
                rq_id = service_job_id(job_id, at)
                queue.enqueue_at(run_at(at), RUN_SERVICE_JOB, job_id, job_id=rq_id, retry=retry,
                                 job_timeout=SERVICE_JOB_TIMEOUT_SECONDS, result_ttl=3600, failure_ttl=7 * 24 * 3600,
                                 pipeline=pipe)
            else:
                rq_id = message_job_id(int(value))
                queue.enqueue(DELIVER_MESSAGE, int(value), job_id=rq_id, retry=retry,
                              job_timeout=SERVICE_JOB_TIMEOUT_SECONDS, result_ttl=3600, failure_ttl=7 * 24 * 3600,
                              pipeline=pipe)
            ids.append(rq_id)
        pipe.execute()
    return ids


# --- notifications (notify queue) ------------------------------------------------------------

NOTIFY_QUEUE = "notify"
SEND_NOTIFICATION = "workers.notify.send_notification"
NOTIFICATION_KIND = "notification"
# Retries for trouble reaching the database; the sender's own failures are recorded on the
# row with their backoff (app.services.outbox), not raised into RQ.
NOTIFY_RETRY_INTERVALS = [5, 30, 120]
NOTIFY_JOB_TIMEOUT_SECONDS = 120  # inside the outbox lease (5 min): a job RQ gave up on never overlaps a retaker


def notification_job_id(notification_id: int) -> str:
    return f"hotline-notification-{notification_id}"


def announced_ids(announcements: Iterable[tuple[str, Any]]) -> list[int]:
    return [int(value) for kind, value in announcements if kind == NOTIFICATION_KIND]


def enqueue_notifications(connection, notification_ids: Iterable[int]) -> list[str]:
    """Enqueue a ``send_notification`` job on the notify queue for each id (one round trip)."""
    queue = Queue(NOTIFY_QUEUE, connection=connection)
    ids = []
    with connection.pipeline() as pipe:
        for notification_id in notification_ids:
            job_id = notification_job_id(notification_id)
            queue.enqueue(SEND_NOTIFICATION, notification_id, job_id=job_id,
                          retry=Retry(max=len(NOTIFY_RETRY_INTERVALS), interval=NOTIFY_RETRY_INTERVALS),
                          job_timeout=NOTIFY_JOB_TIMEOUT_SECONDS, result_ttl=3600, failure_ttl=7 * 24 * 3600,
                          pipeline=pipe)
            ids.append(job_id)
        pipe.execute()
    return ids
