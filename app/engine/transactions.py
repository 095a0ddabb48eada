"""Engine changes that can also run inside a caller's transaction.

Most engine functions are one transaction each. Delivering a thrown message must do its
whole correlation (reach waiting instances, or start one, or keep the message) and mark
the outbox row delivered in ONE transaction, so the same functions also run inside a
given session: each change then gets a SAVEPOINT (a failing delivery rolls back alone and
still records its incident), and what must wait for the commit (the live-workflow cache,
announcements to workers) is appended to ``after`` for the caller to run once it committed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session


@contextmanager
def transaction_in(ctx, session: Session | None) -> Iterator[Session]:
    """A transaction of its own (``session`` None), else a savepoint inside ``session``."""
    if session is None:
        with ctx.db.transaction() as s:
            yield s
    else:
        with session.begin_nested():
            yield session


def after_commit(after: list[Callable[[], None]] | None, work: Callable[[], None]) -> None:
    """Run ``work`` now (the transaction committed), or once the caller's transaction has."""
    if after is None:
        work()
    else:
        after.append(work)


def run_after(after: list[Callable[[], None]]) -> None:
    for work in after:
        work()
