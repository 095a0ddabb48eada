"""Process schedules: processes whose start event is a timer start, started on time by the workers.

Deploy keeps one ``process_schedule`` row per timer start event of each model's latest
version (``sync_library``). ``start_due`` starts what is due: each row is taken with a
row lock the other workers skip (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite has one
writer at a time), and the instance start and the move of ``next_due_at`` commit in one
transaction, so a crash neither starts a slot twice nor skips it.

Missed runs (every worker down over several slots) are caught up with ONE start, for
the latest missed slot; the slots passed over count against a bounded cycle's
repetitions (``R3/...`` runs at most three times, on its calendar). A start that fails
becomes an incident (retry starts it) and the schedule moves on to its next slot.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, HotlineError, IllegalState, NotFound, StepFailed
from app.models import ProcessModel, ProcessVersion
from app.models.schedule import ProcessSchedule, ScheduleKind

from . import clock
from .instances import start
from .library import Library, Problem, ProcessDefinition
from .step import Step
from .timer_starts import BadTimer, TimerStart, next_slot, plan, timer_starts

ACTOR = "scheduler"


def _starts_of(d: ProcessDefinition) -> list[TimerStart]:
    text = d.files.get(d.file)
    return timer_starts(text, d.key) if text else []


def check_library(lib: Library) -> None:
    """Add a validation error for every timer start event whose time cannot be worked out."""
    now = clock.now()
    for d in lib.definitions.values():
        for ts in _starts_of(d):
            try:
                plan(ts, now)
            except BadTimer as exc:
                lib.problems.append(Problem(d.file, ts.element_id, f"timer start event ({ts.kind}): {exc}"))


def sync_library(s: Session, lib: Library) -> None:
    """After deploy: schedules follow each model's latest version.

    A timer start whose expression is unchanged keeps its next due time (a redeploy does not
    move a daily run); a changed or new one is planned again from now; one the latest
    version no longer has is disabled.
    """
    now = clock.now()
    for d in lib.definitions.values():
        model = s.scalar(select(ProcessModel).where(ProcessModel.key == d.key))
        if model is None or model.latest_version_id is None:
            continue
        rows = {r.element_id: r for r in s.scalars(select(ProcessSchedule).where(ProcessSchedule.model_id == model.id))}
        for ts in _starts_of(d):
            row = rows.pop(ts.element_id, None)
            if row is None:
                row = ProcessSchedule(model_id=model.id, element_id=ts.element_id)
                s.add(row)
            elif row.enabled and row.kind == ts.kind and row.expression == ts.expression:
                row.version_id = model.latest_version_id
                continue
            p = plan(ts, now)
            row.version_id, row.kind, row.expression = model.latest_version_id, ts.kind, ts.expression
            row.timer = p.timer
            row.period, row.remaining, row.next_due_at = p.period, p.remaining, p.first_due
            row.enabled, row.last_error, row.updated_at = True, None, now
        for row in rows.values():
            if row.enabled:
                row.enabled, row.next_due_at, row.updated_at = False, None, now


def advance_schedule(row: ProcessSchedule, now: datetime) -> None:
    """Move a schedule past the slot it just started (and past slots missed meanwhile)."""
    if row.kind != ScheduleKind.CYCLE or row.period is None:
        row.remaining, row.next_due_at = 0, None
        return
    nxt, skipped = next_slot(row.next_due_at, row.period, now)
    if row.remaining is not None:
        row.remaining = max(0, row.remaining - 1 - skipped)
    row.next_due_at = nxt if row.remaining != 0 else None
    row.updated_at = now


class _Passed(HotlineError):
    """Another worker started this slot already, or holds the schedule right now."""


@dataclass(frozen=True)
class _Due:
    schedule_id: int
    key: str
    element_id: str
    due_at: datetime


def _due(s: Session, now: datetime, limit: int, schedule_id: int | None = None) -> list[_Due]:
    q = (select(ProcessSchedule.id, ProcessModel.key, ProcessSchedule.element_id, ProcessSchedule.next_due_at)
         .join(ProcessModel, ProcessModel.id == ProcessSchedule.model_id)
         .where(ProcessSchedule.enabled.is_(True), ProcessSchedule.next_due_at <= now)
         .order_by(ProcessSchedule.next_due_at).limit(limit))
    if schedule_id is not None:
        q = q.where(ProcessSchedule.id == schedule_id)
    return [_Due(*r) for r in s.execute(q)]


def _claim(due: _Due, now: datetime) -> Callable[[Session], Callable[[Step], None]]:
    def claim(s: Session) -> Callable[[Step], None]:
        row = s.scalar(select(ProcessSchedule).where(
            ProcessSchedule.id == due.schedule_id, ProcessSchedule.enabled.is_(True),
            ProcessSchedule.next_due_at == due.due_at).with_for_update(skip_locked=True))
        if row is None or row.element_id != due.element_id:
            raise _Passed(f"schedule {due.schedule_id}: started already, or busy")

        def started(step: Step) -> None:
            step.record("timer_fired", due.element_id, due_at=due.due_at.isoformat(), schedule_id=row.id)
            row.last_started_at, row.last_instance_id, row.last_error = now, step.instance.id, None
            advance_schedule(row, now)

        return started

    return claim


def _skip_failed(ctx, due: _Due, now: datetime, error: str) -> None:
    """A start that failed is an incident already; the schedule goes on to its next slot."""
    with ctx.db.transaction() as s:
        row = s.scalar(select(ProcessSchedule).where(ProcessSchedule.id == due.schedule_id,
                                                     ProcessSchedule.next_due_at == due.due_at)
                       .with_for_update(skip_locked=True))
        if row is not None:
            row.last_started_at, row.last_error = now, error[:2000]
            advance_schedule(row, now)


def start_one(ctx, due: _Due) -> int | None:
    """Start one due slot; the new instance id, or None when another worker took it."""
    now = clock.now()
    data = {"scheduled_for": due.due_at.isoformat()}
    try:
        return start(ctx, due.key, data, ACTOR, timer_start=due.element_id, claim=_claim(due, now))
    except _Passed:
        return None
    except StepFailed as exc:
        _skip_failed(ctx, due, now, exc.message)
        raise
    except (NotFound, IllegalState) as exc:  # the process changed under the schedule: say so, move on
        _skip_failed(ctx, due, now, exc.message)
        raise


def start_due(ctx, limit: int = 100) -> dict:
    """Start every schedule that is due (up to ``limit``); what happened, by schedule id."""
    now = clock.now()
    with ctx.db.transaction() as s:
        due_rows = _due(s, now, limit)
    started, failed, skipped = [], [], []
    for due in due_rows:
        try:
            instance_id = start_one(ctx, due)
        except Conflict:
            skipped.append(due.schedule_id)
            continue
        except HotlineError as exc:
            failed.append({"schedule_id": due.schedule_id, "error": getattr(exc, "message", str(exc)),
                           "incident_id": getattr(exc, "incident_id", None)})
            continue
        if instance_id is None:
            skipped.append(due.schedule_id)
        else:
            started.append({"schedule_id": due.schedule_id, "instance_id": instance_id, "process": due.key,
                            "due_at": due.due_at.isoformat()})
    return {"started": started, "failed": failed, "skipped": skipped}


def start_schedule_if_due(ctx, schedule_id: int) -> int | None:
    """One schedule, when it is due (an RQ job at its due time); None when not due or taken."""
    with ctx.db.transaction() as s:
        found = _due(s, clock.now(), 1, schedule_id)
    return start_one(ctx, found[0]) if found else None


def next_due_times(s: Session) -> list[tuple[int, datetime]]:
    """(schedule id, next due) of every active schedule: what the RQ fast path schedules."""
    return list(s.execute(select(ProcessSchedule.id, ProcessSchedule.next_due_at).where(
        ProcessSchedule.enabled.is_(True), ProcessSchedule.next_due_at.is_not(None))).all())


def list_schedules(s: Session) -> list[dict]:
    rows = s.execute(select(ProcessSchedule, ProcessModel.key, ProcessVersion.number)
                     .join(ProcessModel, ProcessModel.id == ProcessSchedule.model_id)
                     .join(ProcessVersion, ProcessVersion.id == ProcessSchedule.version_id)
                     .order_by(ProcessModel.key, ProcessSchedule.element_id)).all()
    return [{
        "id": r.id, "process": key, "version": number, "element_id": r.element_id, "kind": r.kind,
        "expression": r.expression, "timer": r.timer, "enabled": r.enabled, "next_due_at": r.next_due_at,
        "remaining": r.remaining, "last_started_at": r.last_started_at, "last_instance_id": r.last_instance_id,
        "last_error": r.last_error,
    } for r, key, number in rows]
