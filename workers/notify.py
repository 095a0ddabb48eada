"""The ``notify`` queue's job, and the sweep step that sends what no job did.

Both go through ``app.services.outbox``: a notification is claimed with one conditional
UPDATE before it is sent, so the job running twice, two workers running it at once, or a
job racing the sweep send it once (see that module for the one window that remains).
"""
from __future__ import annotations

import logging

from app.db import Database
from app.services import outbox, senders

from . import jobs

log = logging.getLogger("hotline.jobs")

SWEEP_BATCH = 50  # per sweep; the next sweep (seconds later) takes the rest


def _senders() -> senders.Senders:
    # Built per call: a settings change (a new worker environment) needs no cache to go stale,
    # and building one opens no connection.
    return senders.from_settings(jobs.hotline().settings.notify)


def send_notification(notification_id: int) -> dict:
    """Send one SMS or e-mail if it is still due; nothing happens when it was sent already."""
    h = jobs.hotline()
    outcome = outbox.deliver(h.db, _senders(), notification_id, max_attempts=h.settings.notify.max_attempts)
    return outcome.to_dict()


def send_due(db: Database, limit: int = SWEEP_BATCH) -> dict:
    """One sweep step: send the due notifications straight from the database."""
    result = outbox.send_due(db, _senders(), limit=limit, max_attempts=jobs.hotline().settings.notify.max_attempts)
    if result.sent or result.failed or result.retrying:
        log.info("notifications sent %s, retrying %s, failed %s", result.sent, result.retrying,
                 [f["notification_id"] for f in result.failed])
    return result.to_dict()
