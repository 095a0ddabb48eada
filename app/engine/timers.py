"""Fire the timers that are due. Workers call this; tests call it after moving the clock."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from app.errors import Conflict, HotlineError, IllegalState, StepFailed
from app.models import InstanceStatus, ProcessInstance, Timer

from . import clock
from .runtime import run_on_instance
from .step import Step


def due_instance_ids(ctx, now: datetime, limit: int) -> list[int]:
    # A timer fires once its due time has passed (due_at < now), as SpiffWorkflow decides.
    # Only the due rows are read, through the due_at index, each instance looked up by key: a join
    # ordered by instance let SQLite walk every waiting instance, so an idle sweep grew with the
    # timers waiting (bench/timers.py). Earliest due first; an instance with two due timers once.
    waiting = (select(ProcessInstance.id).where(ProcessInstance.id == Timer.instance_id,
                                                ProcessInstance.status == InstanceStatus.WAITING).exists())
    with ctx.db.transaction() as s:
        due = s.scalars(select(Timer.instance_id).where(Timer.due_at < now, waiting)
                        .order_by(Timer.due_at, Timer.instance_id).limit(limit))
        return list(dict.fromkeys(due))


class _Passed(HotlineError):
    """Nothing to fire here: another worker holds the instance, or its timers already fired."""


def _claim(instance_id: int, now: datetime, skip_locked: bool):
    """Find the instance inside the firing transaction, locked, only while it has a due timer.

    ``skip_locked``: an instance another worker is changing right now is skipped
    (FOR NO KEY UPDATE SKIP LOCKED on PostgreSQL; SQLite's database lock serializes
    anyway), so sweepers running at once split the due instances between them.
    """

    def locate(s) -> int:
        found = s.scalar(select(ProcessInstance.id).where(
            ProcessInstance.id == instance_id, ProcessInstance.status == InstanceStatus.WAITING)
            .with_for_update(key_share=True, skip_locked=skip_locked))
        if found is None or s.scalar(select(Timer.id).where(Timer.instance_id == instance_id,
                                                            Timer.due_at < now).limit(1)) is None:
            raise _Passed(f"instance {instance_id}: nothing due, or busy")
        return found

    return locate


def fire_instance_timers(ctx, instance_id: int, actor: str = "system", resolve_incident_id: int | None = None,
                         *, only_if_due: bool = False, skip_locked: bool = False) -> bool:
    """Fire the instance's due timers in one engine transaction; True when one fired.

    ``only_if_due``: write nothing at all unless the waiting instance has a due timer (jobs
    and sweeps: running twice changes nothing the second time).
    """
    now = clock.now()

    def action(step: Step) -> bool:
        due = step.session.scalars(select(Timer).where(Timer.instance_id == instance_id,
                                                       Timer.due_at < now)).all()
        for timer in due:
            step.record("timer_fired", timer.element_id, due_at=timer.due_at.isoformat())
        return bool(due)

    target = _claim(instance_id, now, skip_locked) if only_if_due else instance_id
    try:
        return run_on_instance(ctx, target, actor, action, incident_action={"name": "fire_timers", "actor": actor},
                               resolve_incident_id=resolve_incident_id)
    except _Passed:
        return False


def fire_due(ctx, limit: int = 500, grace_seconds: float = 0.0) -> dict:
    """Fire every due timer (up to ``limit`` instances); returns what happened.

    ``grace_seconds``: leave timers due less than that long ago to their RQ jobs (the
    workers' sweep): the sweep only recovers what a job missed, instead of racing the jobs
    through a burst (1,000 timers due at once fired ~40% slower with both at work).

    Several workers may sweep at once: each takes an instance with a row lock the others
    skip, and re-checks inside that lock that a timer is still due, so a timer fires once.
    One transaction per instance: a batch of instances in one transaction, each in a savepoint,
    fired some timers twice with two sweepers on PostgreSQL (bench/RESULTS.md, Timers).
    """
    fired, failed, skipped = [], [], []
    for instance_id in due_instance_ids(ctx, clock.now() - timedelta(seconds=grace_seconds), limit):
        try:
            if fire_instance_timers(ctx, instance_id, only_if_due=True, skip_locked=True):
                fired.append(instance_id)
        except (Conflict, IllegalState):
            skipped.append(instance_id)  # changed meanwhile; the next sweep sees it again
        except StepFailed as exc:
            failed.append({"instance_id": instance_id, "incident_id": exc.incident_id, "error": exc.message})
    return {"fired": fired, "failed": failed, "skipped": skipped}
