"""Who carries a notification out of Hotline: an SMS gateway and an SMTP sender.

Both are chosen from the settings (``NotifySettings``). With nothing configured, SMS and
e-mail are written to the log and count as sent, so the embedded mode works with no
outside services; the log line says so plainly.

An SMS gateway is any class with ``send(to, text, reference)``; production names a
factory with ``HOTLINE_SMS_GATEWAY=package.module:factory`` (a class taking the
``NotifySettings`` fits). A sender raises ``PermanentFailure`` for what retrying cannot
fix (a refused address); any other exception is retried with backoff.
"""
from __future__ import annotations

import importlib
import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Protocol

from app.config import NotifySettings

log = logging.getLogger("hotline.notify")
SMTP_TIMEOUT_SECONDS = 30  # well inside the outbox lease, so a hung server cannot outlive it


class PermanentFailure(Exception):
    """Sending can never succeed (a refused address): no more attempts."""


@dataclass(frozen=True)
class Outgoing:
    """One notification as a sender sees it."""

    id: int
    channel: str
    recipient: str
    subject: str
    text: str
    created_at: datetime

    @property
    def reference(self) -> str:
        """Stable for this notification across every attempt (its id alone repeats after a database
        is rebuilt, so the creation time is part of it): receivers can drop a second copy."""
        return f"hotline.{self.id}.{self.created_at.strftime('%Y%m%d%H%M%S%f')}"


class SmsGateway(Protocol):
    def send(self, to: str, text: str, reference: str) -> Any:
        """Hand the message to the gateway; raise when it was not accepted."""


class LogOnlySmsGateway:
    """The default: no gateway configured, so the message is only written to the log."""

    def __init__(self, settings: NotifySettings | None = None):
        self.settings = settings

    def send(self, to: str, text: str, reference: str) -> None:
        log.info("SMS to %s [%s] (log only: no SMS gateway configured, set HOTLINE_SMS_GATEWAY): %s",
                 to, reference, text)


class SmtpSender:
    """E-mail over SMTP (``HOTLINE_SMTP_*``); without a host it only logs."""

    def __init__(self, settings: NotifySettings):
        self.settings = settings

    @property
    def domain(self) -> str:
        return self.settings.smtp_from.rpartition("@")[2].strip(" >") or "hotline.local"

    def message(self, item: Outgoing) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.smtp_from
        msg["To"] = item.recipient
        msg["Subject"] = item.subject
        msg["Date"] = format_datetime(item.created_at)
        msg["Message-ID"] = f"<{item.reference}@{self.domain}>"
        msg.set_content(item.text)
        return msg

    def send(self, item: Outgoing) -> None:
        s = self.settings
        if not s.smtp_host:
            log.info("e-mail to %s [%s] (log only: HOTLINE_SMTP_HOST is not set): %s\n%s",
                     item.recipient, item.reference, item.subject, item.text)
            return
        msg = self.message(item)
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password or "")
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentFailure(f"the mail server refused {item.recipient}: {_smtp_reasons(exc.recipients)}") \
                from exc
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            if 500 <= exc.smtp_code < 600:  # 5xx: the server will never take this message
                raise PermanentFailure(f"the mail server refused the message: {exc.smtp_code} "
                                       f"{_text(exc.smtp_error)}") from exc
            raise
        log.info("e-mail to %s [%s] sent via %s:%s", item.recipient, item.reference, s.smtp_host, s.smtp_port)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _smtp_reasons(recipients: dict) -> str:
    return "; ".join(f"{code} {_text(reason)}" for code, reason in recipients.values())


class Senders:
    """Sends an ``Outgoing`` on its channel."""

    def __init__(self, sms: SmsGateway, email: SmtpSender):
        self.sms = sms
        self.email = email

    def send(self, item: Outgoing) -> None:
        if item.channel == "sms":
            self.sms.send(item.recipient, item.text, item.reference)
        elif item.channel == "email":
            self.email.send(item)
        else:
            raise PermanentFailure(f"channel {item.channel!r} is not sent by a sender")


def load_gateway(path: str, settings: NotifySettings) -> SmsGateway:
    """``package.module:factory`` (or ``package.module.factory``) called with the settings."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"HOTLINE_SMS_GATEWAY={path!r} names nothing importable "
                         f"(expected 'package.module:factory'): {exc}") from exc
    gateway = factory(settings)
    if not callable(getattr(gateway, "send", None)):
        raise ValueError(f"HOTLINE_SMS_GATEWAY={path!r} made {type(gateway).__name__}, which has no send(to, text, "
                         "reference) method")
    return gateway


def from_settings(settings: NotifySettings) -> Senders:
    sms = load_gateway(settings.sms_gateway, settings) if settings.sms_gateway else LogOnlySmsGateway(settings)
    return Senders(sms, SmtpSender(settings))
