"""The context of one engine transaction, shared by the runtime and the sync step."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from sqlalchemy.orm import Session

from app.models import InstanceEvent, ProcessInstance

from . import clock
from .compile import CompiledVersion


@dataclass
class Step:
    """What one engine transaction works on."""

    session: Session
    instance: ProcessInstance
    compiled: CompiledVersion
    workflow: BpmnWorkflow
    actor: str
    started_ts: float = field(default_factory=time.time)
    events: list[InstanceEvent] = field(default_factory=list)
    resolve_incident_id: int | None = None
    loaded_status: str | None = None  # the instance's status before this transaction
    is_new: bool = False  # started in this transaction: it has no task, timer or subscription rows yet
    timers_set: list = field(default_factory=list)  # (instance_id, due_at) of timer rows this step wrote

    def record(self, kind: str, element_id: str | None = None, **detail: Any) -> None:
        self.events.append(InstanceEvent(instance_id=self.instance.id, at=clock.now(), kind=kind,
                                         element_id=element_id, actor=self.actor, detail=jsonable(detail)))


class StepError(Exception):
    """A script, expression or service failed while the engine ran."""

    def __init__(self, message: str, element_id: str | None):
        super().__init__(message)
        self.element_id = element_id


def jsonable(value: Any) -> Any:
    """Make task data storable as JSON (Decimal and datetimes become strings)."""
    return json.loads(json.dumps(value, default=str))


