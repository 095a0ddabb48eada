"""Messages from outside: deliver to waiting instances, else start new ones, else keep."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, StepFailed
from app.models import BufferedMessage, MessageStart, MessageSubscription, ProcessModel

from . import clock
from .correlation import deliver, matches
from .instances import require_data, start
from .runtime import run_on_instance
from .step import Step, jsonable
from .transactions import run_after

CONFLICT_RETRIES = 5


@dataclass
class Correlated:
    delivered: list[int] = field(default_factory=list)  # instance ids that received it
    started: list[int] = field(default_factory=list)  # instance ids it started
    buffered: int | None = None  # id of the kept message when nobody took it
    failed: list[dict] = field(default_factory=list)  # {instance_id or process, incident_id, error}
    start_error: StepFailed | None = field(default=None, repr=False)  # raised after the commit

    def to_dict(self) -> dict:
        return {"delivered": self.delivered, "started": self.started, "buffered": self.buffered,
                "failed": self.failed}


def correlate(ctx, name: str, keys: dict | None = None, payload: dict | None = None,
              actor: str = "system", ttl_seconds: int | None = None, *, session: Session | None = None,
              after: list | None = None, origin: dict | None = None) -> Correlated:
    """Deliver a message to the instances waiting for it, else start the processes whose message
    start event has its name, else keep it for ``ttl_seconds``: all in one transaction.

    ``session``/``after``: run inside the caller's transaction (a thrown message is marked
    delivered in the same one; see transactions.py). ``origin`` ({"instance_id",
    "business_key", "element_id"}): the process that threw it, named in the receivers' history.
    """
    if not name or not isinstance(name, str):
        raise InvalidInput("a message needs a name")
    keys = require_data(keys, "correlation keys")
    payload = require_data(payload, "message payload")
    if session is not None:
        return _correlate_in(ctx, session, after, name, keys, payload, actor, ttl_seconds, origin)
    later: list = []
    with ctx.db.transaction() as s:
        result = _correlate_in(ctx, s, later, name, keys, payload, actor, ttl_seconds, origin)
    run_after(later)
    if result.start_error is not None:
        raise result.start_error
    return result


def _correlate_in(ctx, s: Session, after: list | None, name: str, keys: dict, payload: dict, actor: str,
                  ttl_seconds: int | None, origin: dict | None) -> Correlated:
    result = Correlated()
    candidates = [(sub.instance_id, sub.spiff_task_id)
                  for sub in s.scalars(select(MessageSubscription)
                                       .where(MessageSubscription.message_name == name)
                                       .order_by(MessageSubscription.id))
                  if matches(sub.correlation, sub.retrieval, keys, payload)]
    for instance_id, spiff_task_id in candidates:
        try:
            if _deliver_with_retry(ctx, s, after, instance_id, spiff_task_id, name, keys, payload, actor, origin):
                result.delivered.append(instance_id)
        except StepFailed as exc:
            result.failed.append({"instance_id": instance_id, "incident_id": exc.incident_id, "error": exc.message})
    if result.delivered or result.failed:
        return result
    starters = s.execute(select(ProcessModel.key).join(MessageStart, MessageStart.version_id ==
                                                       ProcessModel.latest_version_id)
                         .where(MessageStart.message_name == name).distinct()).scalars().all()
    for key in starters:
        message = {"name": name, "keys": keys, "payload": payload, **({"origin": origin} if origin else {})}
        try:
            result.started.append(start(ctx, key, {}, actor, start_message=message, session=s, after=after))
        except StepFailed as exc:  # recorded as an incident (its retry starts it); the others still start
            result.failed.append({"process": key, "incident_id": exc.incident_id, "error": exc.message})
            result.start_error = result.start_error or exc
    if result.started or result.failed:
        return result
    ttl = ctx.message_ttl_seconds if ttl_seconds is None else ttl_seconds
    kept = BufferedMessage(message_name=name, correlation=jsonable(keys), payload=jsonable(payload),
                           received_at=clock.now(), expires_at=clock.now() + timedelta(seconds=ttl), sent_by=actor)
    s.add(kept)
    s.flush()
    result.buffered = kept.id
    return result


def _deliver_with_retry(ctx, s: Session, after: list | None, instance_id: int, spiff_task_id: str, name: str,
                        keys: dict, payload: dict, actor: str, origin: dict | None) -> bool:
    def action(step: Step) -> bool:
        return deliver(step, spiff_task_id, name, keys, payload, origin=origin)

    for attempt in range(CONFLICT_RETRIES):
        try:
            return run_on_instance(ctx, instance_id, actor, action, session=s, after=after, incident_action={
                "name": "deliver", "spiff_task_id": spiff_task_id, "message": name, "keys": keys,
                "payload": payload, "actor": actor})
        except Conflict:
            if attempt == CONFLICT_RETRIES - 1:
                raise
    return False


def expire_buffered(ctx) -> int:
    """Drop kept messages whose time-to-live has passed; returns how many."""
    with ctx.db.transaction() as s:
        return s.execute(delete(BufferedMessage).where(BufferedMessage.expires_at <= clock.now())).rowcount
