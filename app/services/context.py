"""The database session a service operation works in.

A BPMN service task runs inside the engine's transaction, which holds the instance row
and, on SQLite, the only write lock. An operation that opened a transaction of its own
would wait for that lock until it timed out (SQLite), or commit a customer that the
engine then rolls back with a failed step (PostgreSQL). So the engine binds its session
while a step runs (``bound``), and an operation that declares a ``_session`` parameter
gets it from the registry (``registry.call``): its writes commit or roll back with the
process step that called it. Nothing else can reach this session.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy.orm import Session

_STEP_SESSION: ContextVar[Session | None] = ContextVar("hotline_step_session", default=None)


class NoTransaction(RuntimeError):
    """An operation that needs the database was called outside an engine step."""


@contextmanager
def bound(session: Session) -> Iterator[None]:
    """While an engine step runs: service operations called from it use ``session``."""
    token = _STEP_SESSION.set(session)
    try:
        yield
    finally:
        _STEP_SESSION.reset(token)


def session_for(operation: str) -> Session:
    session = _STEP_SESSION.get()
    if session is None:
        raise NoTransaction(f"service operation {operation!r} needs the database: it runs inside an engine "
                            "step, or is called with _session=... directly")
    return session
