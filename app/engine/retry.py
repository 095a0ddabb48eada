"""Retry an incident: replay the action that failed, and close the incident if it works."""
from __future__ import annotations

from app.errors import Conflict, IllegalState, NotFound
from app.models import Incident

from . import async_runner
from .correlation import deliver
from .incidents import resolve
from .instances import start
from .runtime import run_on_instance
from .step import Step
from .tasks import finish_task
from .timers import fire_instance_timers


def retry(ctx, incident_id: int, actor: str) -> dict:
    with ctx.db.transaction() as s:
        incident = s.get(Incident, incident_id)
        if incident is None:
            raise NotFound(f"incident {incident_id} does not exist")
        if incident.status != "open":
            raise IllegalState(f"incident {incident_id} is already {incident.status}")
        action, instance_id = dict(incident.action), incident.instance_id
    name = action.get("name")
    if name == "start":
        new_id = start(ctx, action["key"], action.get("data") or {}, action.get("actor", actor),
                       start_message=action.get("start_message"))
        _close(ctx, incident_id, actor)
        return {"incident_id": incident_id, "instance_id": new_id}
    if name in ("retry_service_job", "continue_service_job"):
        return async_runner.retry(ctx, incident_id, action, actor)
    if name == "fire_timers":
        fire_instance_timers(ctx, instance_id, actor, resolve_incident_id=incident_id)
    elif name == "complete":
        _complete_again(ctx, instance_id, incident_id, action, actor)
    elif name == "deliver":
        def redo(step: Step) -> None:
            if not deliver(step, action["spiff_task_id"], action["message"], action.get("keys") or {},
                           action.get("payload") or {}):
                raise Conflict("the instance no longer waits for this message")

        run_on_instance(ctx, instance_id, actor, redo, incident_action=action, resolve_incident_id=incident_id)
    else:
        raise IllegalState(f"incident {incident_id} has an action Hotline cannot replay: {name!r}")
    return {"incident_id": incident_id, "instance_id": instance_id}


def _complete_again(ctx, instance_id: int, incident_id: int, action: dict, actor: str) -> None:
    def redo(step: Step) -> None:
        finish_task(step, action["task_id"], action.get("data") or {}, action.get("actor", actor), retried_by=actor)

    run_on_instance(ctx, instance_id, actor, redo, incident_action=action, resolve_incident_id=incident_id)


def _close(ctx, incident_id: int, actor: str) -> None:
    with ctx.db.transaction() as s:
        resolve(s.get(Incident, incident_id), actor)
