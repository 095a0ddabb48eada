"""Notifications: written with the process step that decides them, sent once afterwards by the
notify job or the workers' sweep, over a real SMTP server, a gateway, or into a user's inbox."""
from __future__ import annotations

import email
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from email import policy

import pytest
from conftest import ROOT
from sqlalchemy import select
from support import redis_server_url, settings_for

from app import create_app
from app import hotline as app_hotline
from app.config import NotifySettings
from app.container import Hotline
from app.errors import Forbidden, IllegalState, NotFound, StepFailed
from app.migrate import upgrade
from app.models import utcnow
from app.models.notification import Notification
from app.scheduling import NOTIFY_QUEUE, notification_job_id
from app.services import identity, notify, outbox, senders
from workers import jobs
from workers import notify as notify_jobs
from workers.sweeper import Sweeper

PHONE = "+8613800138000"

NOTIFY_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="t">
  <bpmn:process id="tell_customer" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="texts"/>
    <bpmn:scriptTask id="texts">
      <bpmn:script>sms_text = {"zh": "您的工单已受理", "en": "Your ticket was received"}[language]
subject = {"zh": "工单已受理", "en": "Ticket received"}[language]</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="texts" targetRef="sms"/>
    <bpmn:serviceTask id="sms">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="notify.sms" resultVariable="sms_result">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="to" type="str" value="phone"/>
            <spiffworkflow:parameter id="text" type="str" value="sms_text"/>
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f3" sourceRef="sms" targetRef="mail"/>
    <bpmn:serviceTask id="mail">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="notify.email" resultVariable="email_result">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="to" type="str" value="mail_to"/>
            <spiffworkflow:parameter id="subject" type="str" value="subject"/>
            <spiffworkflow:parameter id="text" type="str" value="sms_text"/>
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f4" sourceRef="mail" targetRef="agent_note"/>
    <bpmn:serviceTask id="agent_note">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="notify.in_app" resultVariable="in_app_result">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="text" type="str" value="'Customer told: ' + sms_text"/>
            <spiffworkflow:parameter id="user" type="str" value="'li.na'"/>
            <spiffworkflow:parameter id="link" type="str" value="'/tickets/1'"/>
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f5" sourceRef="agent_note" targetRef="after"/>
    <bpmn:scriptTask id="after">
      <bpmn:script>if fail:
    raise RuntimeError("the step failed after notifying")</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f6" sourceRef="after" targetRef="wait"/>
    <bpmn:userTask id="wait" name="Follow up"/>
    <bpmn:sequenceFlow id="f7" sourceRef="wait" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _start_data(**changes) -> dict:
    return {"phone": "138 0013 8000", "mail_to": "wang.fang@example.com", "language": "zh", "fail": False,
            **changes}


class RecordingGateway:
    """An SMS gateway standing in for the outside world: records what it was given."""

    sent: list[tuple[str, str, str]] = []  # the gateway named by dotted path in settings writes here

    def __init__(self, settings=None, delay: float = 0.0, fail_with: Exception | None = None):
        self.delay, self.fail_with, self.lock = delay, fail_with, threading.Lock()
        self.mine: list[tuple[str, str, str]] = []

    def send(self, to: str, text: str, reference: str) -> None:
        time.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        with self.lock:
            self.mine.append((to, text, reference))
            RecordingGateway.sent.append((to, text, reference))


def not_a_gateway(settings) -> str:
    return "a gateway factory that returns no gateway"


def _senders(gateway=None, **smtp) -> senders.Senders:
    return senders.Senders(gateway or RecordingGateway(), senders.SmtpSender(NotifySettings(**smtp)))


def _rows(db) -> list[Notification]:
    with db.transaction() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def _row(db, notification_id: int) -> Notification:
    with db.transaction() as s:
        return s.get(Notification, notification_id)


def _staff(db) -> None:
    with db.transaction() as s:
        identity.ensure_user(s, "li.na", groups=["hotline"])
        identity.ensure_user(s, "wang.wei", groups=["hotline"])
        identity.ensure_user(s, "zhang.min", groups=["hotline-supervisors", "hotline"])
        identity.ensure_user(s, "chen.jie", groups=["water-dept"])


def _sms(db, to: str = PHONE, text: str = "您的工单已受理") -> int:
    with db.transaction() as s:
        return notify.sms(to, text, _session=s)["notification_id"]


def _email(db, to: str = "wang.fang@example.com", subject: str = "工单已受理 Ticket received",
           text: str = "您好，您的工单 WO-2026-000123 已受理。\nYour ticket was received.") -> int:
    with db.transaction() as s:
        return notify.email(to, subject, text, _session=s)["notification_id"]


@pytest.fixture(autouse=True)
def _clean_gateway():
    RecordingGateway.sent = []
    yield
    RecordingGateway.sent = []


# --- written with the step ----------------------------------------------------------------------


@pytest.fixture
def announced(engine, tmp_path):
    _staff(engine.db)
    path = tmp_path / "tell_customer.bpmn"
    path.write_text(NOTIFY_BPMN)
    engine.deploy([path])
    seen: list = []
    engine.on_committed.append(seen.extend)
    return seen


def test_a_service_task_writes_the_outbox_with_its_step_and_announces_after_commit(engine, announced):
    iid = engine.start("tell_customer", _start_data())

    sms, mail, note = _rows(engine.db)
    assert (sms.channel, sms.recipient, sms.text, sms.status) == ("sms", PHONE, "您的工单已受理", "pending")
    assert (mail.channel, mail.recipient, mail.subject) == ("email", "wang.fang@example.com", "工单已受理")
    assert (note.channel, note.username, note.status, note.link) == ("in_app", "li.na", "sent", "/tickets/1")
    assert note.text == "Customer told: 您的工单已受理" and note.read_at is None
    assert {sms.instance_id, mail.instance_id, note.instance_id} == {iid}
    assert announced == [("notification", sms.id), ("notification", mail.id), ("notification.in_app", note.id)]
    data = engine.instance_detail(iid)["data"]
    assert data["sms_result"] == {"notification_id": sms.id}
    assert data["in_app_result"] == {"notification_ids": [note.id]}


def test_the_texts_follow_the_language_the_diagram_picks(engine, announced):
    engine.start("tell_customer", _start_data(language="en"))
    assert [r.text for r in _rows(engine.db)[:2]] == ["Your ticket was received"] * 2


def test_a_failed_step_leaves_no_notification_and_announces_nothing(engine, announced):
    with pytest.raises(StepFailed, match="the step failed after notifying"):
        engine.start("tell_customer", _start_data(fail=True))
    assert _rows(engine.db) == []
    assert announced == []


def test_a_bad_phone_number_fails_the_step_naming_the_number(engine, announced):
    with pytest.raises(StepFailed, match=r"ValueError: cannot send an SMS to '8001': '8001' is not a valid phone"):
        engine.start("tell_customer", _start_data(phone="8001"))
    assert _rows(engine.db) == []


@pytest.mark.parametrize("call, problem", [
    (lambda s: notify.sms("call me", "hi", _session=s), "cannot send an SMS to 'call me'"),
    (lambda s: notify.sms(PHONE, "   ", _session=s), "text is empty"),
    (lambda s: notify.sms(PHONE, {"zh": "你好", "en": "hi"}, _session=s), "pick the language in the diagram first"),
    (lambda s: notify.sms(PHONE, "x" * 10_001, _session=s), "10001 characters long"),
    (lambda s: notify.email("wang.fang", "s", "t", _session=s), "cannot send an e-mail to 'wang.fang'"),
    (lambda s: notify.email("a@example.com", "two\nlines", "t", _session=s), "subject must be one line"),
    (lambda s: notify.email("a@example.com", "", "t", _session=s), "subject is empty"),
    (lambda s: notify.in_app("hi", _session=s), "needs a user or a group"),
    (lambda s: notify.in_app("hi", user="nobody", _session=s), "no user 'nobody'"),
    (lambda s: notify.in_app("hi", user="li.na", link="javascript:alert(1)", _session=s), "must be a path"),
    (lambda s: notify.supervisors("", "hi", _session=s), "needs the name of the group"),
])
def test_bad_input_is_refused_naming_the_problem(db, call, problem):
    _staff(db)
    with pytest.raises(ValueError, match=problem), db.transaction() as s:
        call(s)
    assert _rows(db) == []


# --- in-app: groups, supervisors, inbox ----------------------------------------------------------


def test_in_app_reaches_a_group_once_per_person(db):
    _staff(db)
    with db.transaction() as s:
        identity.ensure_user(s, "gone", groups=["hotline"]).is_active = False
        ids = notify.in_app("Queue is long", user="li.na", group="hotline", _session=s)["notification_ids"]
        nobody = notify.in_app("hi", group="no-such-team", _session=s)["notification_ids"]
    assert [r.username for r in _rows(db)] == ["li.na", "wang.wei", "zhang.min"]  # no copy twice, no disabled user
    assert len(ids) == 3 and nobody == []


def test_supervisors_of_a_group_then_the_fallback_then_nobody(db):
    _staff(db)
    with db.transaction() as s:
        hotline_ids = notify.supervisors("hotline", "overdue", _session=s)["notification_ids"]
        nobody = notify.supervisors("water-dept", "overdue", _session=s)["notification_ids"]
        identity.ensure_user(s, "boss", groups=["supervisors"])
        fallback = notify.supervisors("water-dept", "overdue", _session=s)["notification_ids"]
        identity.ensure_group(s, "water-dept").supervisor_group = "hotline-supervisors"
        configured = notify.supervisors("water-dept", "overdue", _session=s)["notification_ids"]
    recipients = {r.id: r.username for r in _rows(db)}
    assert [recipients[i] for i in hotline_ids] == ["zhang.min"]
    assert nobody == []  # nobody to tell is not an error
    assert [recipients[i] for i in fallback] == ["boss"]
    assert [recipients[i] for i in configured] == ["zhang.min"]  # the group's own supervisor_group wins


def test_inbox_lists_unread_first_and_only_the_owner_marks_read(db):
    _staff(db)
    with db.transaction() as s:
        first = notify.in_app("first", user="li.na", _session=s)["notification_ids"][0]
        second = notify.in_app("second", user="li.na", _session=s)["notification_ids"][0]
        third = notify.in_app("third", user="li.na", _session=s)["notification_ids"][0]
        notify.in_app("not hers", user="wang.wei", _session=s)
    with db.transaction() as s:
        with pytest.raises(Forbidden, match=f"notification {second} was sent to another user"):
            notify.mark_read(s, second, "wang.wei")
    with db.transaction() as s:
        read = notify.mark_read(s, second, "li.na")
    with db.transaction() as s:
        again = notify.mark_read(s, second, "li.na")
        box = notify.inbox(s, "li.na")
        unread = notify.inbox(s, "li.na", unread_only=True)
        with pytest.raises(NotFound, match="no user 'nobody'"):
            notify.inbox(s, "nobody")
        with pytest.raises(NotFound, match="no in-app notification 999"):
            notify.mark_read(s, 999, "li.na")
    assert read["read_at"] is not None and again["read_at"] == read["read_at"]  # read twice: the first time stays
    assert [n["id"] for n in box["notifications"]] == [third, first, second]
    assert box["unread"] == 2 and unread["unread"] == 2
    assert [n["id"] for n in unread["notifications"]] == [third, first]


# --- sending: once, however often and however many at once ---------------------------------------


def test_the_job_sends_once_when_run_twice(db):
    gateway = RecordingGateway()
    nid = _sms(db)
    first = outbox.deliver(db, _senders(gateway), nid)
    second = outbox.deliver(db, _senders(gateway), nid)
    assert (first.status, second.status) == ("sent", "skipped")
    row = _row(db, nid)
    assert len(gateway.mine) == 1 and gateway.mine[0][:2] == (PHONE, "您的工单已受理")
    assert (row.status, row.attempts, row.claim_token, row.last_error) == ("sent", 1, None, None)
    assert row.sent_at is not None
    assert outbox.send_due(db, _senders(gateway)).sent == []  # the sweep finds nothing left either


def test_in_app_rows_are_never_sent_by_a_sender(db):
    _staff(db)
    with db.transaction() as s:
        [nid] = notify.in_app("hi", user="li.na", _session=s)["notification_ids"]
    assert outbox.deliver(db, _senders(), nid).status == "skipped"
    assert outbox.send_due(db, _senders()).to_dict()["sent"] == []


@pytest.mark.postgres
def test_two_jobs_at_once_send_once(pg_db):
    gateway = RecordingGateway(delay=0.2)  # a slow gateway: the second job arrives while the first sends
    nid = _sms(pg_db)
    barrier = threading.Barrier(6)
    outcomes: list = []

    def job():
        barrier.wait()
        outcomes.append(outbox.deliver(pg_db, _senders(gateway), nid).status)

    threads = [threading.Thread(target=job) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["sent"] + ["skipped"] * 5
    assert len(gateway.mine) == 1
    assert _row(pg_db, nid).status == "sent"


@pytest.mark.postgres
def test_sweepers_at_once_share_the_outbox_and_send_each_once(pg_db):
    gateway = RecordingGateway(delay=0.01)
    ids = [_sms(pg_db, text=f"message {i}") for i in range(30)]
    barrier = threading.Barrier(4)
    results: list = []

    def sweep():
        barrier.wait()
        results.append(outbox.send_due(pg_db, _senders(gateway)))

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    sent = [i for r in results for i in r.sent]
    assert sorted(sent) == ids
    assert sorted(text for _, text, _ in gateway.mine) == sorted(f"message {i}" for i in range(30))
    assert sum(1 for r in results if r.sent) >= 2  # the sweepers shared the work


def test_a_sender_killed_mid_send_is_replaced_after_its_lease(db):
    gateway = RecordingGateway()
    nid = _sms(db)
    now = utcnow()
    assert outbox.claim(db, nid, now) is not None  # a worker took it ... and died before writing anything
    assert _row(db, nid).status == "sending"

    assert outbox.deliver(db, _senders(gateway), nid, now=now + timedelta(minutes=1)).status == "skipped"
    assert outbox.send_due(db, _senders(gateway), now=now + timedelta(minutes=1)).skipped == []  # not due yet
    later = now + outbox.LEASE + timedelta(seconds=1)
    assert outbox.send_due(db, _senders(gateway), now=later).sent == [nid]
    row = _row(db, nid)
    assert (row.status, row.attempts) == ("sent", 2)  # the killed attempt counts
    assert len(gateway.mine) == 1


def test_a_late_sender_whose_lease_was_taken_does_not_overwrite_the_new_one(db):
    nid = _sms(db)
    now = utcnow()
    _, old_token, _ = outbox.claim(db, nid, now)
    _, new_token, _ = outbox.claim(db, nid, now + outbox.LEASE + timedelta(seconds=1))
    assert not outbox._finish(db, nid, old_token, status="failed", last_error="late")
    assert _row(db, nid).status == "sending" and _row(db, nid).last_error is None
    assert outbox._finish(db, nid, new_token, status="sent", sent_at=now)


def test_failures_back_off_then_fail_for_good_and_a_retry_sends_it(db, tmp_path, monkeypatch):
    broken = RecordingGateway(fail_with=ConnectionError("gateway unreachable"))
    nid = _sms(db)
    now = utcnow()
    waits = []
    for attempt in range(1, 5):
        outcome = outbox.deliver(db, _senders(broken), nid, now=now, max_attempts=5)
        assert outcome.status == "retrying" and outcome.error == "ConnectionError: gateway unreachable"
        row = _row(db, nid)
        assert (row.status, row.attempts, row.last_error) == ("pending", attempt, outcome.error)
        waits.append(row.next_attempt_at - now)
        assert outbox.deliver(db, _senders(broken), nid, now=now).status == "skipped"  # not due again yet
        now = row.next_attempt_at
    assert waits == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120), timedelta(seconds=240)]
    assert outbox.deliver(db, _senders(broken), nid, now=now, max_attempts=5).status == "failed"
    row = _row(db, nid)
    assert (row.status, row.attempts, row.last_error) == ("failed", 5, "ConnectionError: gateway unreachable")
    assert outbox.send_due(db, _senders(), now=now + timedelta(days=1)).sent == []  # failed stays failed

    with db.transaction() as s:
        assert [r["id"] for r in notify.outbox(s, status="failed")] == [nid]  # what a manager sees
        notify.retry(s, nid)
    row = _row(db, nid)
    assert (row.status, row.attempts) == ("pending", 0)
    working = RecordingGateway()
    assert outbox.send_due(db, _senders(working)).sent == [nid]
    assert len(working.mine) == 1
    with db.transaction() as s, pytest.raises(IllegalState, match="retrying would send it twice"):
        notify.retry(s, nid)


def test_backoff_grows_to_an_hour_at_most():
    assert [outbox.backoff(n).total_seconds() for n in (1, 2, 3, 7, 8, 20)] == [30, 60, 120, 1920, 3600, 3600]


def test_a_permanent_failure_fails_at_once(db):
    nid = _sms(db)
    gateway = RecordingGateway(fail_with=senders.PermanentFailure("the gateway says the number does not exist"))
    assert outbox.deliver(db, _senders(gateway), nid, max_attempts=5).status == "failed"
    assert _row(db, nid).attempts == 1


# --- the senders --------------------------------------------------------------------------------


class _SmtpInbox:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    inbox = _SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


def test_email_over_smtp_arrives_once_with_subject_text_and_a_stable_message_id(db, smtp_server):
    smtp = {"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port, "smtp_from": "hotline@water.example.cn"}
    nid = _email(db)
    assert outbox.deliver(db, _senders(**smtp), nid).status == "sent"
    assert outbox.deliver(db, _senders(**smtp), nid).status == "skipped"

    [msg] = smtp_server.messages
    row = _row(db, nid)
    assert msg["To"] == "wang.fang@example.com" and msg["From"] == "hotline@water.example.cn"
    assert msg["Subject"] == "工单已受理 Ticket received"
    body = msg.get_content().replace("\r\n", "\n").strip()
    assert body == "您好，您的工单 WO-2026-000123 已受理。\nYour ticket was received."
    expected_id = f"<hotline.{nid}.{row.created_at.strftime('%Y%m%d%H%M%S%f')}@water.example.cn>"
    assert msg["Message-ID"] == expected_id
    item = senders.Outgoing(row.id, row.channel, row.recipient, row.subject, row.text, row.created_at)
    assert senders.SmtpSender(NotifySettings(**smtp)).message(item)["Message-ID"] == expected_id  # same on a resend


def test_a_refused_address_fails_at_once_and_an_unreachable_server_retries(db, smtp_server):
    smtp = {"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port}
    refused = _email(db, to="nobody@example.com")
    assert outbox.deliver(db, _senders(**smtp), refused).status == "failed"
    assert "the mail server refused nobody@example.com: 550 5.1.1 no such mailbox" in _row(db, refused).last_error

    later = _email(db)
    down = {"smtp_host": "127.0.0.1", "smtp_port": _free_port()}  # nothing listens there
    outcome = outbox.deliver(db, _senders(**down), later)
    assert outcome.status == "retrying" and "ConnectionRefusedError" in outcome.error
    assert smtp_server.messages == []


def test_without_an_smtp_host_email_is_logged_and_counts_as_sent(db, caplog):
    nid = _email(db)
    with caplog.at_level(logging.INFO, logger="hotline.notify"):
        assert outbox.deliver(db, _senders(), nid).status == "sent"
    assert "e-mail to wang.fang@example.com" in caplog.text
    assert "log only: HOTLINE_SMTP_HOST is not set" in caplog.text


def test_the_default_sms_gateway_logs_the_message(db, caplog):
    nid = _sms(db)
    with caplog.at_level(logging.INFO, logger="hotline.notify"):
        assert outbox.deliver(db, senders.from_settings(NotifySettings()), nid).status == "sent"
    assert f"SMS to {PHONE}" in caplog.text and "您的工单已受理" in caplog.text
    assert "log only: no SMS gateway configured" in caplog.text
    assert _row(db, nid).status == "sent"


def test_an_sms_gateway_is_chosen_by_dotted_path():
    chosen = senders.from_settings(NotifySettings(sms_gateway="test_notifications:RecordingGateway"))
    assert isinstance(chosen.sms, RecordingGateway)
    with pytest.raises(ValueError, match="HOTLINE_SMS_GATEWAY='no.such:Gateway' names nothing importable"):
        senders.from_settings(NotifySettings(sms_gateway="no.such:Gateway"))
    with pytest.raises(ValueError, match="has no send"):
        senders.from_settings(NotifySettings(sms_gateway="test_notifications:not_a_gateway"))


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("HOTLINE_SMTP_HOST", "mail.example.cn")
    monkeypatch.setenv("HOTLINE_SMTP_PORT", "587")
    monkeypatch.setenv("HOTLINE_SMTP_STARTTLS", "true")
    monkeypatch.setenv("HOTLINE_SMTP_FROM", "hotline@example.cn")
    monkeypatch.setenv("HOTLINE_SMS_GATEWAY", "test_notifications:RecordingGateway")
    got = NotifySettings.from_env()
    assert (got.smtp_host, got.smtp_port, got.smtp_starttls, got.smtp_from) == (
        "mail.example.cn", 587, True, "hotline@example.cn")
    assert got.sms_gateway == "test_notifications:RecordingGateway"
    monkeypatch.setenv("HOTLINE_SMTP_PORT", "smtp")
    with pytest.raises(RuntimeError, match="HOTLINE_SMTP_PORT='smtp' is not a whole number"):
        NotifySettings.from_env()


# --- CLI and API ---------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path, monkeypatch):
    settings = settings_for(tmp_path, monkeypatch)
    settings = settings.but(notify=NotifySettings(sms_gateway="test_notifications:RecordingGateway"))
    application = create_app(settings)
    h = app_hotline(application)
    upgrade(h.db)
    _staff(h.db)
    jobs.use(h)
    yield application
    jobs.use(None)
    h.close()


def _cli(app, *args: str, code: int = 0):
    result = app.test_cli_runner().invoke(args=list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, f"{args}: {result.stdout}\n{result.stderr}"
    if "--json" in args:
        return json.loads(result.stdout)
    return result


def test_cli_lists_sends_retries_and_reads(app):
    db = app_hotline(app).db
    good, bad = _sms(db), _sms(db, text="second")
    with db.transaction() as s:
        s.get(Notification, bad).status = "failed"
        s.get(Notification, bad).last_error = "ConnectionError: gateway unreachable"
        [note] = notify.in_app("Ticket WO-1 is overdue", user="li.na", link="/tickets/1", _session=s)[
            "notification_ids"]

    failed = _cli(app, "notifications", "list", "--status", "failed", "--json")
    assert [(n["id"], n["last_error"]) for n in failed] == [(bad, "ConnectionError: gateway unreachable")]
    table = _cli(app, "notifications", "list", "--channel", "sms").stdout
    assert "LAST ERROR" in table and "gateway unreachable" in table and PHONE in table

    assert _cli(app, "notifications", "send-due", "--json")["sent"] == [good]
    assert _cli(app, "notifications", "retry", str(bad), "--json")["status"] == "pending"
    assert _cli(app, "notifications", "send-due", "--json")["sent"] == [bad]
    assert sorted(text for _, text, _ in RecordingGateway.sent) == ["second", "您的工单已受理"]
    assert "sent 0, retrying later 0, failed 0, skipped 0" in _cli(app, "notifications", "send-due").stdout

    box = _cli(app, "notifications", "inbox", "--user", "li.na", "--unread", "--json")
    assert (box["unread"], [n["id"] for n in box["notifications"]]) == (1, [note])
    assert "1 unread" in _cli(app, "notifications", "inbox", "--user", "li.na").stdout
    err = _cli(app, "notifications", "read", str(note), "--user", "wang.wei", code=1).stderr
    assert err.strip() == f"error: notification {note} was sent to another user; only they may mark it read"
    assert _cli(app, "notifications", "read", str(note), "--user", "li.na", "--json")["read_at"]
    assert _cli(app, "notifications", "inbox", "--user", "li.na", "--unread", "--json")["notifications"] == []
    err = _cli(app, "notifications", "retry", str(good), code=1).stderr
    assert err.startswith(f"error: notification {good} was sent at ") and err.count("\n") == 1
    assert _cli(app, "notifications", "retry", "999", "--json", code=1)["error"] == "not_found"


@pytest.mark.parametrize("reachable", [pytest.param(True, id="redis", marks=pytest.mark.redis),
                                       pytest.param(False, id="redis-down")])
def test_cli_retry_enqueues_the_job_and_a_redis_outage_only_leaves_it_to_the_sweep(tmp_path, monkeypatch,
                                                                                   reachable, request):
    import redis
    from rq import Queue

    url = request.getfixturevalue("redis_url") if reachable else "redis://127.0.0.1:1/0"
    application = create_app(settings_for(tmp_path, monkeypatch, redis_url=url))
    h = app_hotline(application)
    try:
        upgrade(h.db)
        nid = _sms(h.db)
        with h.db.transaction() as s:
            s.get(Notification, nid).status = "failed"
        started = time.monotonic()
        assert _cli(application, "notifications", "retry", str(nid), "--json")["status"] == "pending"
        assert time.monotonic() - started < 10
        if reachable:
            conn = redis.Redis.from_url(url)
            assert Queue(NOTIFY_QUEUE, connection=conn).job_ids == [notification_job_id(nid)]
            conn.close()
    finally:
        h.close()


def test_api_inbox_and_mark_read(app):
    db = app_hotline(app).db
    with db.transaction() as s:
        [old] = notify.in_app("old news", user="li.na", _session=s)["notification_ids"]
        [new] = notify.in_app("客户来电：工单已逾期", user="li.na", link="/tickets/7", _session=s)["notification_ids"]
    client = app.test_client()

    got = client.post(f"/api/v1/notifications/{old}/read", json={"user": "li.na"})
    assert got.status_code == 200 and got.json["read_at"] and got.json["id"] == old
    box = client.get("/api/v1/users/li.na/notifications").json
    assert [n["id"] for n in box["notifications"]] == [new, old] and box["unread"] == 1
    assert box["notifications"][0]["text"] == "客户来电：工单已逾期"
    assert box["notifications"][0]["link"] == "/tickets/7"
    unread = client.get("/api/v1/users/li.na/notifications?unread=1").json
    assert [n["id"] for n in unread["notifications"]] == [new]

    other = client.post(f"/api/v1/notifications/{new}/read", json={"user": "wang.wei"})
    assert other.status_code == 403 and other.json["error"] == "forbidden"
    missing = client.post(f"/api/v1/notifications/{new}/read", json={})
    assert missing.status_code == 422 and "user" in missing.json["message"]
    assert client.post(f"/api/v1/notifications/{new}/read", data="x").status_code == 422
    assert client.get("/api/v1/users/nobody/notifications").status_code == 404
    bad = client.get("/api/v1/users/li.na/notifications?unread=maybe")
    assert bad.status_code == 422 and "unread" in bad.json["message"]
    assert _row(db, new).read_at is None  # nothing above marked it


# --- the job on Redis, and the sweep without it ----------------------------------------------------


@pytest.fixture
def redis_url():
    import redis

    url = redis_server_url()
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def _hotline(tmp_path, monkeypatch, **changes) -> Hotline:
    settings = settings_for(tmp_path, monkeypatch, **changes)
    h = Hotline(settings.but(notify=NotifySettings(sms_gateway="test_notifications:RecordingGateway")))
    upgrade(h.db)
    _staff(h.db)
    path = tmp_path / "tell_customer.bpmn"
    path.write_text(NOTIFY_BPMN)
    h.engine.deploy([path])
    jobs.use(h)
    return h


@pytest.mark.redis
def test_the_engine_hook_enqueues_a_job_and_an_rq_worker_sends_it_once(tmp_path, monkeypatch, redis_url):
    import redis
    from rq import Queue, SimpleWorker

    h = _hotline(tmp_path, monkeypatch, redis_url=redis_url)
    conn = redis.Redis.from_url(redis_url)
    try:
        h.engine.start("tell_customer", _start_data())
        sms, mail, note = _rows(h.db)
        queue = Queue(NOTIFY_QUEUE, connection=conn)
        assert queue.job_ids == [notification_job_id(sms.id), notification_job_id(mail.id)]  # not the in-app one

        assert SimpleWorker([queue], connection=conn).work(burst=True)
        assert [r.status for r in _rows(h.db)] == ["sent", "sent", "sent"]
        assert [(to, text) for to, text, _ in RecordingGateway.sent] == [(PHONE, "您的工单已受理")]

        h.enqueue_notifications([("notification", sms.id)])  # a duplicate job (a replay, a second announce)
        SimpleWorker([queue], connection=conn).work(burst=True)
        assert len(RecordingGateway.sent) == 1
        assert notify_jobs.send_notification(sms.id)["status"] == "skipped"
    finally:
        jobs.use(None)
        conn.close()
        h.close()


def test_without_redis_the_sweep_sends_everything(tmp_path, monkeypatch):
    h = _hotline(tmp_path, monkeypatch)  # REDIS_URL unset: no hook, no job
    try:
        assert h.enqueue_notifications not in h.engine.on_committed
        h.engine.start("tell_customer", _start_data())
        assert [r.status for r in _rows(h.db)] == ["pending", "pending", "sent"]
        Sweeper(h.engine, 1.0, threading.Event()).sweep_once()
        assert [r.status for r in _rows(h.db)] == ["sent", "sent", "sent"]
        assert [to for to, _, _ in RecordingGateway.sent] == [PHONE]
    finally:
        jobs.use(None)
        h.close()


def test_an_unreachable_redis_delays_nothing_and_loses_nothing(tmp_path, monkeypatch):
    h = _hotline(tmp_path, monkeypatch, redis_url="redis://127.0.0.1:1/0")
    try:
        started = time.monotonic()
        h.engine.start("tell_customer", _start_data())
        assert time.monotonic() - started < 5
        assert notify_jobs.send_due(h.db)["sent"] == [r.id for r in _rows(h.db)[:2]]
    finally:
        jobs.use(None)
        h.close()


def _wait_for(predicate, seconds: float, what: str, log) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {seconds}s waiting for {what}\n{log.read_text()[-3000:] if log.exists() else ''}")


@pytest.mark.redis
def test_a_real_worker_sweeps_what_redis_never_had_and_its_jobs_send_the_rest(tmp_path, monkeypatch, redis_url):
    """`python -m workers` as production runs it, nothing configured (SMS and e-mail go to the log)."""
    import redis
    from rq.job import Job

    h = _hotline(tmp_path, monkeypatch, redis_url=redis_url)
    orphan = _sms(h.db, text="written while Redis knew nothing")  # no step, no announcement, no job
    log = tmp_path / "worker.log"
    env = dict(os.environ, DATABASE_URL=h.settings.database_url, REDIS_URL=redis_url,
               HOTLINE_INSTANCE_DIR=str(h.settings.instance_dir), HOTLINE_SWEEP_SECONDS="60", PYTHONPATH=str(ROOT))
    env.pop("HOTLINE_SMS_GATEWAY", None)
    worker = subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=env, stdout=open(log, "ab"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    conn = redis.Redis.from_url(redis_url)
    try:
        # The first sweep runs at start; the next one is a minute away, so what follows is the jobs' work.
        _wait_for(lambda: f"notifications sent [{orphan}]" in log.read_text(), 30, "the first sweep", log)
        _wait_for(lambda: "Listening on" in log.read_text(), 30, "the worker to start", log)
        h.engine.start("tell_customer", _start_data())
        sms, mail, _ = _rows(h.db)[1:]
        job_ids = [notification_job_id(sms.id), notification_job_id(mail.id)]

        def finished() -> bool:
            return all(Job.fetch(j, connection=conn).get_status(refresh=True) == "finished" for j in job_ids)

        _wait_for(finished, 30, "the notify jobs", log)
        assert [Job.fetch(j, connection=conn).return_value()["status"] for j in job_ids] == ["sent", "sent"]
        assert [r.status for r in _rows(h.db)] == ["sent", "sent", "sent", "sent"]
        text = log.read_text()
        assert text.count(f"SMS to {PHONE}") == 2 and "log only: no SMS gateway configured" in text
        assert text.count("e-mail to wang.fang@example.com") == 1 and "log only: HOTLINE_SMTP_HOST is not set" in text
    finally:
        conn.close()
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(15)
        jobs.use(None)
        h.close()
