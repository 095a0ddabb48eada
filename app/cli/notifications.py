"""flask --app wsgi notifications list|inbox|read|retry|send-due"""
from __future__ import annotations

import logging

import click

from app.models.notification import Channel, NotificationStatus
from app.services import notify, outbox, senders

from .common import HotlineGroup, emit, hotline, json_option, table

log = logging.getLogger("hotline.notify")
notifications = HotlineGroup("notifications", help="The SMS/e-mail outbox and users' in-app notifications.")

_OUTBOX = [("id", "ID"), ("channel", "CHANNEL"), ("recipient", "TO"), ("status", "STATUS"), ("attempts", "TRIES"),
           ("next_attempt_at", "NEXT TRY"), ("instance_id", "TICKET"), ("last_error", "LAST ERROR")]
_INBOX = [("id", "ID"), ("created_at", "WHEN"), ("read", "READ"), ("text", "TEXT"), ("link", "LINK")]


@notifications.command("list")
@click.option("--status", type=click.Choice(NotificationStatus.ALL), default=None,
              help="failed: the ones waiting for a manager's retry.")
@click.option("--channel", type=click.Choice(Channel.ALL), default=None)
@click.option("--instance", "instance_id", type=int, default=None, help="Only this ticket's notifications.")
@click.option("--limit", default=100, show_default=True)
@json_option
def list_notifications(status, channel, instance_id, limit):
    """Notifications, newest first, with their sending state and last error."""
    with hotline().db.transaction() as s:
        rows = notify.outbox(s, status=status, channel=channel, instance_id=instance_id, limit=limit)
    emit(rows, lambda r: table(r, _OUTBOX, "no notifications"))


@notifications.command("inbox")
@click.option("--user", required=True, help="Whose in-app notifications.")
@click.option("--unread", is_flag=True, help="Only those not read yet.")
@click.option("--limit", default=100, show_default=True)
@json_option
def inbox(user, unread, limit):
    """A user's in-app notifications, unread first."""
    with hotline().db.transaction() as s:
        result = notify.inbox(s, user, unread_only=unread, limit=limit)

    def human(r):
        click.echo(f"{r['unread']} unread")
        table([{**n, "read": "yes" if n["read_at"] else "no"} for n in r["notifications"]], _INBOX,
              "no notifications")

    emit(result, human)


@notifications.command("read")
@click.argument("notification_id", type=int)
@click.option("--user", required=True, help="The user it was sent to (nobody else may mark it read).")
@json_option
def read(notification_id, user):
    """Mark an in-app notification read."""
    with hotline().db.transaction() as s:
        row = notify.mark_read(s, notification_id, user)
    emit(row, f"notification {notification_id} read")


@notifications.command("retry")
@click.argument("notification_id", type=int)
@json_option
def retry(notification_id):
    """Send a failed SMS or e-mail again (a fresh set of attempts)."""
    h = hotline()
    with h.db.transaction() as s:
        row = notify.retry(s, notification_id)
    if h.settings.redis_url:  # the fast path; without it the next sweep (or send-due) sends it
        try:
            h.enqueue_notifications([(notify.ANNOUNCE_SEND, notification_id)])
        except Exception:  # noqa: BLE001 - Redis down: the row is pending, the sweep sends it
            log.warning("could not enqueue notification %s; the workers' sweep sends it", notification_id,
                        exc_info=True)
    emit(row, f"notification {notification_id} is pending again; a worker sends it shortly "
              "(or run: flask --app wsgi notifications send-due)")


@notifications.command("send-due")
@click.option("--limit", default=100, show_default=True, help="At most this many per run.")
@json_option
def send_due(limit):
    """Send every SMS and e-mail that is due now (what the workers' sweep does)."""
    h = hotline()
    result = outbox.send_due(h.db, senders.from_settings(h.settings.notify), limit=limit,
                             max_attempts=h.settings.notify.max_attempts).to_dict()
    emit(result, f"sent {len(result['sent'])}, retrying later {len(result['retrying'])}, "
                 f"failed {len(result['failed'])}, skipped {len(result['skipped'])}")
