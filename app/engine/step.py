"""The context of one engine transaction, shared by the runtime and the sync step."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.orm import Session

from . import clock
from .compile import CompiledVersion
from .records import InstanceRecord


@dataclass
class Step:
    """What one engine transaction works on."""

    session: Session
    instance: InstanceRecord
    compiled: CompiledVersion
    workflow: BpmnWorkflow
    actor: str
    started_ts: float = field(default_factory=time.time)
    events: list[dict] = field(default_factory=list)  # instance_event rows, written when the step finishes
    resolve_incident_id: int | None = None
    loaded_status: str | None = None  # the instance's status before this transaction
    is_new: bool = False  # started in this transaction: it has no task, timer or subscription rows yet
    timers_set: list = field(default_factory=list)  # (instance_id, due_at) of timer rows this step wrote
    # Spiff ids of the user tasks that were ready when the step began: by the sync step's own
    # invariant, exactly those with an active human_task row (None: unknown, read the rows).
    ready_before: set[str] | None = None
    finished: set[str] = field(default_factory=set)  # user tasks this step completed (rows marked already)

    def record(self, kind: str, element_id: str | None = None, **detail: Any) -> None:
        self.events.append({"instance_id": self.instance.id, "at": clock.now(), "kind": kind,
                            "element_id": element_id, "actor": self.actor, "detail": jsonable(detail)})


def ready_human_ids(workflow: BpmnWorkflow) -> set[str]:
    """Spiff ids of the user tasks ready in the workflow and its sub-processes."""
    ready = set()
    for tasks in (workflow.tasks, *(sp.tasks for sp in workflow.subprocesses.values())):
        for task in tasks.values():
            if task.state == TaskState.READY and task.task_spec.manual:
                ready.add(str(task.id))
    return ready


class StepError(Exception):
    """A script, expression or service failed while the engine ran."""

    def __init__(self, message: str, element_id: str | None):
        super().__init__(message)
        self.element_id = element_id


def jsonable(value: Any) -> Any:
    """Make task data storable as JSON (Decimal and datetimes become strings)."""
    return json.loads(json.dumps(value, default=str))


