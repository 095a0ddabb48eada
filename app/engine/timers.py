"""Fire the timers that are due. Workers call this; tests call it after moving the clock."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.errors import Conflict, IllegalState, StepFailed
from app.models import InstanceStatus, ProcessInstance, Timer

from . import clock
from .runtime import run_on_instance
from .step import Step


def due_instance_ids(ctx, now: datetime, limit: int) -> list[int]:
    # A timer fires once its due time has passed (due_at < now), as SpiffWorkflow decides.
    with ctx.db.transaction() as s:
        return list(s.scalars(
            select(Timer.instance_id).join(ProcessInstance, ProcessInstance.id == Timer.instance_id)
            .where(Timer.due_at < now, ProcessInstance.status == InstanceStatus.WAITING)
            .group_by(Timer.instance_id).order_by(Timer.instance_id).limit(limit)))


def fire_instance_timers(ctx, instance_id: int, actor: str = "system", resolve_incident_id: int | None = None) -> bool:
    now = clock.now()

    def action(step: Step) -> bool:
        due = step.session.scalars(select(Timer).where(Timer.instance_id == instance_id,
                                                       Timer.due_at < now)).all()
        for timer in due:
            step.record("timer_fired", timer.element_id, due_at=timer.due_at.isoformat())
        return bool(due)

    return run_on_instance(ctx, instance_id, actor, action, incident_action={"name": "fire_timers", "actor": actor},
                           resolve_incident_id=resolve_incident_id)


def fire_due(ctx, limit: int = 500) -> dict:
    """Fire every due timer (up to ``limit`` instances); returns what happened."""
    fired, failed, skipped = [], [], []
    for instance_id in due_instance_ids(ctx, clock.now(), limit):
        try:
            if fire_instance_timers(ctx, instance_id):
                fired.append(instance_id)
        except (Conflict, IllegalState):
            skipped.append(instance_id)  # changed meanwhile; the next sweep sees it again
        except StepFailed as exc:
            failed.append({"instance_id": instance_id, "incident_id": exc.incident_id, "error": exc.message})
    return {"fired": fired, "failed": failed, "skipped": skipped}
