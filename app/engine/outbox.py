"""Delivering thrown messages (the ``thrown_message`` outbox) exactly once.

A job (announced after the throwing step committed) or the sweep takes one undelivered row
with a lock the others skip, correlates it exactly like ``engine.correlate`` (reach the
waiting instances, else start the processes whose message start event has its name, else
keep it for the message time-to-live) INSIDE the same transaction, and marks the row
delivered there too: the delivery and "delivered" commit together, so a second run finds
nothing to do, and a run that fails half-way changes nothing.
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from app.models.async_work import ThrownMessage

from . import clock
from .async_tasks import decode
from .messages import correlate
from .runtime import error_text
from .transactions import run_after

log = logging.getLogger("hotline.messages")

MAX_ATTEMPTS = 10  # a message that failed this often waits for a person (see last_error)


def deliver(ctx, message_id: int) -> dict | None:
    """Deliver one thrown message; None when it was delivered already (or another worker has it)."""
    after: list = []
    try:
        with ctx.db.transaction() as s:
            row = s.scalar(select(ThrownMessage).where(ThrownMessage.id == message_id,
                                                       ThrownMessage.delivered_at.is_(None))
                           .with_for_update(skip_locked=True))
            if row is None:
                return None
            origin = {"instance_id": row.instance_id, "business_key": row.sender_business_key,
                      "element_id": row.element_id}
            result = correlate(ctx, row.message_name, dict(row.correlation or {}), decode(row.payload) or {},
                               actor="system", session=s, after=after, origin=origin)
            row.delivered_at = clock.now()
            row.attempts += 1
            row.outcome = result.to_dict()
            outcome = {"message": row.message_name, **result.to_dict()}
    except Exception as exc:
        _record_failure(ctx, message_id, exc)
        raise
    run_after(after)
    return outcome


def _record_failure(ctx, message_id: int, exc: Exception) -> None:
    try:
        with ctx.db.transaction() as s:
            row = s.get(ThrownMessage, message_id)
            if row is not None and row.delivered_at is None:
                row.attempts += 1
                row.last_error = error_text(exc)[:4000]
    except Exception:  # noqa: BLE001 - the database may be what failed; the sweep tries again
        log.exception("could not record the failed delivery of thrown message %s", message_id)


def deliver_due(ctx, limit: int = 100) -> dict:
    """The sweep: deliver what no job delivered (oldest first)."""
    with ctx.db.transaction() as s:
        ids = list(s.scalars(select(ThrownMessage.id).where(ThrownMessage.delivered_at.is_(None),
                                                            ThrownMessage.attempts < MAX_ATTEMPTS)
                             .order_by(ThrownMessage.id).limit(limit)))
    delivered, failed = [], []
    for message_id in ids:
        try:
            if deliver(ctx, message_id) is not None:
                delivered.append(message_id)
        except Exception as exc:  # noqa: BLE001 - recorded on the row; the others still go
            failed.append({"message_id": message_id, "error": error_text(exc)})
    if delivered or failed:
        log.info("sweep: thrown messages delivered %s, failed %s", delivered, [f["message_id"] for f in failed])
    return {"delivered": delivered, "failed": failed}
