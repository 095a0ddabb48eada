"""The engine step a service operation runs in: its database session, its instance, and
what it leaves to do after the commit.

A BPMN service task runs inside the engine's transaction, which holds the instance row
and, on SQLite, the only write lock. An operation that opened a transaction of its own
would wait for that lock until it timed out (SQLite), or commit a customer that the
engine then rolls back with a failed step (PostgreSQL). So the engine binds its session
while a step runs (``bound``), and an operation that declares a ``_session`` parameter
gets it from the registry (``registry.call``): its writes commit or roll back with the
process step that called it. Nothing else can reach this session.

An operation that declares ``_instance_id`` gets the id of the instance whose step calls
it (``None`` while an instance is being started and has no row yet is never the case: the
engine flushes the row before the first step runs).

Work that must wait for the commit (sending a notification, delivering a thrown message)
is announced with ``after_commit(kind, value)``: the engine collects the announcements of
the step and, once the transaction committed, hands them to its ``on_committed`` hooks as
``[(kind, value), ...]``; a rolled-back step announces nothing. Each kind's own periodic
sweep picks up whatever an announcement missed, so an announcement is a fast path only.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session


@dataclass
class StepContext:
    session: Session
    instance_id: int | None = None
    announcements: list[tuple[str, Any]] = field(default_factory=list)
    # While a service task runs: the Spiff ids of the user task (and what is under it) whose
    # boundary event led to it, computed when asked; None when no boundary event did.
    late_tasks: Callable[[], frozenset[str] | None] = lambda: None


_STEP: ContextVar[StepContext | None] = ContextVar("hotline_step", default=None)


class NoTransaction(RuntimeError):
    """An operation that needs the database was called outside an engine step."""


@contextmanager
def bound(session: Session, instance_id: int | None = None) -> Iterator[StepContext]:
    """While an engine step runs: service operations called from it use ``session``."""
    step = StepContext(session, instance_id)
    token = _STEP.set(step)
    try:
        yield step
    finally:
        _STEP.reset(token)


def session_for(operation: str) -> Session:
    step = _STEP.get()
    if step is None:
        raise NoTransaction(f"service operation {operation!r} needs the database: it runs inside an engine "
                            "step, or is called with _session=... directly")
    return step.session


def instance_for(operation: str) -> int:
    step = _STEP.get()
    if step is None or step.instance_id is None:
        raise NoTransaction(f"service operation {operation!r} acts on the instance that calls it: it runs "
                            "inside an engine step, or is called with _instance_id=... directly")
    return step.instance_id


@contextmanager
def running(late_tasks: Callable[[], frozenset[str] | None]) -> Iterator[None]:
    """While one service task runs (the engine's doing): what ``late_tasks()`` answers."""
    step = _STEP.get()
    if step is None:
        yield
        return
    before, step.late_tasks = step.late_tasks, late_tasks
    try:
        yield
    finally:
        step.late_tasks = before


def late_tasks() -> frozenset[str] | None:
    """The Spiff ids of the user task whose boundary event (an SLA timer) led to the running
    service, and of what is under it; None outside a step or when no boundary event did."""
    step = _STEP.get()
    return step.late_tasks() if step is not None else None


def after_commit(kind: str, value: Any) -> None:
    """Announce work for after the commit (see the module doc). Outside a step: nothing to announce to."""
    step = _STEP.get()
    if step is not None:
        step.announcements.append((kind, value))
