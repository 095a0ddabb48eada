"""Messages from outside: deliver to waiting instances, else start new ones, else keep."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, select

from app.errors import Conflict, InvalidInput, StepFailed
from app.models import BufferedMessage, MessageStart, MessageSubscription, ProcessModel

from . import clock
from .correlation import deliver, matches
from .instances import require_data, start
from .runtime import run_on_instance
from .step import Step

CONFLICT_RETRIES = 5


@dataclass
class Correlated:
    delivered: list[int] = field(default_factory=list)  # instance ids that received it
    started: list[int] = field(default_factory=list)  # instance ids it started
    buffered: int | None = None  # id of the kept message when nobody took it
    failed: list[dict] = field(default_factory=list)  # {instance_id, incident_id, error}

    def to_dict(self) -> dict:
        return {"delivered": self.delivered, "started": self.started, "buffered": self.buffered,
                "failed": self.failed}


def correlate(ctx, name: str, keys: dict | None = None, payload: dict | None = None,
              actor: str = "system", ttl_seconds: int | None = None) -> Correlated:
    if not name or not isinstance(name, str):
        raise InvalidInput("a message needs a name")
    keys = require_data(keys, "correlation keys")
    payload = require_data(payload, "message payload")
    result = Correlated()
    with ctx.db.transaction() as s:
        candidates = [(sub.instance_id, sub.spiff_task_id)
                      for sub in s.scalars(select(MessageSubscription)
                                           .where(MessageSubscription.message_name == name)
                                           .order_by(MessageSubscription.id))
                      if matches(sub.correlation, sub.retrieval, keys, payload)]
    for instance_id, spiff_task_id in candidates:
        try:
            if _deliver_with_retry(ctx, instance_id, spiff_task_id, name, keys, payload, actor):
                result.delivered.append(instance_id)
        except StepFailed as exc:
            result.failed.append({"instance_id": instance_id, "incident_id": exc.incident_id, "error": exc.message})
    if result.delivered or result.failed:
        return result
    with ctx.db.transaction() as s:
        starters = s.execute(select(ProcessModel.key).join(MessageStart, MessageStart.version_id ==
                                                           ProcessModel.latest_version_id)
                             .where(MessageStart.message_name == name).distinct()).scalars().all()
    for key in starters:
        message = {"name": name, "keys": keys, "payload": payload}
        result.started.append(start(ctx, key, {}, actor, start_message=message))
    if result.started:
        return result
    ttl = ctx.message_ttl_seconds if ttl_seconds is None else ttl_seconds
    with ctx.db.transaction() as s:
        kept = BufferedMessage(message_name=name, correlation=keys, payload=payload, received_at=clock.now(),
                               expires_at=clock.now() + timedelta(seconds=ttl), sent_by=actor)
        s.add(kept)
        s.flush()
        result.buffered = kept.id
    return result


def _deliver_with_retry(ctx, instance_id: int, spiff_task_id: str, name: str, keys: dict, payload: dict,
                        actor: str) -> bool:
    def action(step: Step) -> bool:
        return deliver(step, spiff_task_id, name, keys, payload)

    for attempt in range(CONFLICT_RETRIES):
        try:
            return run_on_instance(ctx, instance_id, actor, action, incident_action={
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
