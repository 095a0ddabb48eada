"""Incidents: a failed step, kept with the action that failed so a manager can retry it."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Incident, InstanceEvent, InstanceStatus, ProcessInstance

from . import clock
from .step import jsonable
from .transactions import transaction_in


def resolve(incident: Incident, actor: str) -> None:
    incident.status, incident.resolved_at, incident.resolved_by = "resolved", clock.now(), actor


def record_incident(ctx, instance_id: int | None, process_key: str, element_id: str | None, error: str,
                    action: dict, actor: str, session: Session | None = None) -> int:
    """Record (or count again) an open incident, in a transaction of its own (or a savepoint of ``session``)."""
    with transaction_in(ctx, session) as s:
        incident = None
        if instance_id is not None:
            incident = s.scalar(select(Incident).where(
                Incident.instance_id == instance_id, Incident.status == "open",
                Incident.element_id == element_id).limit(1))
        if incident is not None and incident.action.get("name") == action.get("name"):
            incident.attempts += 1
            incident.error = error
            incident.action = jsonable(action)
        else:
            incident = Incident(instance_id=instance_id, process_key=process_key, element_id=element_id,
                                error=error, action=jsonable(action), created_at=clock.now())
            s.add(incident)
        s.flush()
        if instance_id is not None:
            instance = s.get(ProcessInstance, instance_id)
            if instance is not None and instance.status not in InstanceStatus.ENDED + (InstanceStatus.SUSPENDED,):
                instance.status = InstanceStatus.ERROR
                instance.updated_at = clock.now()
            s.add(InstanceEvent(instance_id=instance_id, at=clock.now(), kind="incident", element_id=element_id,
                                actor=actor, detail={"incident_id": incident.id, "error": error[:2000]}))
        return incident.id
