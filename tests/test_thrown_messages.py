"""Messages a process throws reach other processes: recorded in the throwing step's
transaction, announced after the commit, delivered once by a job (or the sweep) exactly like
``engine.correlate``; in scenario tests they are only recorded and can be expected."""
from __future__ import annotations

import shutil
import signal
import threading
from decimal import Decimal

import pytest
from conftest import bpmn_path
from engine_helpers import history, incidents, open_elements, status
from sqlalchemy import select

from app.engine import ProcessEngine
from app.engine.async_tasks import decode
from app.engine.scenarios import run_paths
from app.errors import StepFailed
from app.models import BufferedMessage, ProcessInstance
from app.models.async_work import ThrownMessage


def thrown(db) -> list[ThrownMessage]:
    with db.transaction() as s:
        return list(s.scalars(select(ThrownMessage).order_by(ThrownMessage.id)))


def instances_of(db, key_prefix: str) -> list[ProcessInstance]:
    with db.transaction() as s:
        return list(s.scalars(select(ProcessInstance).where(ProcessInstance.business_key.startswith(key_prefix))
                              .order_by(ProcessInstance.id)))


@pytest.fixture
def library(deploy):
    deploy("msg_throw_parent.bpmn", "msg_throw_child.bpmn", "msg_pay.bpmn", "msg_catch.bpmn")


def test_a_thrown_message_starts_the_process_that_starts_on_it_with_the_payload(engine, library):
    seen = []
    engine.on_committed.append(seen.extend)

    parent = engine.start("request_parent", {"order_no": "A1", "amount": Decimal("12.50"), "fail_after": False})

    [row] = thrown(engine.db)
    assert (row.message_name, row.element_id, row.delivered_at) == ("x.requested", "ask_child", None)
    assert decode(row.payload) == {"order_no": "A1", "amount": Decimal("12.50"), "note": "from parent"}
    assert seen == [("message", row.id)]
    [sent] = history(engine.db, parent, "message_sent")
    assert (sent.element_id, sent.detail["message"]) == ("ask_child", "x.requested")
    assert instances_of(engine.db, "RC") == []  # recorded only: nothing delivered inside the step

    outcome = engine.deliver_thrown_message(row.id)

    [child] = instances_of(engine.db, "RC")
    assert outcome["started"] == [child.id]
    assert open_elements(engine.db, child.id) == ["handle_request"]
    request = engine.instance_detail(child.id)["data"]["request"]
    assert request == {"order_no": "A1", "amount": "12.50", "note": "from parent"}
    [received] = history(engine.db, child.id, "message_received")
    parent_key = engine.instance_detail(parent)["business_key"]
    assert received.detail["from_business_key"] == parent_key  # the child's history names its sender
    assert received.detail["from_instance"] == parent
    [row] = thrown(engine.db)
    assert row.delivered_at is not None and row.outcome["started"] == [child.id]


def test_the_payload_keeps_decimal_money_in_the_receiving_process(engine, library):
    engine.start("request_parent", {"order_no": "A2", "amount": Decimal("0.10"), "fail_after": False})
    engine.deliver_thrown_messages()
    [child] = instances_of(engine.db, "RC")
    with engine.db.transaction() as s:
        compiled = engine.specs.get(s, child.version_id)
        stored = s.get(ProcessInstance, child.id).state
    workflow = compiled.load(stored)
    assert workflow.last_task.data["request"]["amount"] == Decimal("0.10")


def test_running_the_delivery_twice_delivers_once(engine, library):
    engine.start("request_parent", {"order_no": "A3", "amount": 1, "fail_after": False})
    [row] = thrown(engine.db)

    assert engine.deliver_thrown_message(row.id)["started"]
    assert engine.deliver_thrown_message(row.id) is None  # the duplicate job changes nothing
    assert engine.run_due_background_work()["messages"] == {"delivered": [], "failed": []}  # nor the sweep
    assert len(instances_of(engine.db, "RC")) == 1


@pytest.mark.postgres
def test_concurrent_deliveries_of_one_message_start_one_process(pg_db, forms_dir):
    ProcessEngine(pg_db, forms_dir).deploy([bpmn_path("msg_throw_parent.bpmn"), bpmn_path("msg_throw_child.bpmn")])
    engines = [ProcessEngine(pg_db, forms_dir) for _ in range(4)]
    for n in range(3):
        engines[0].start("request_parent", {"order_no": f"C{n}", "amount": 1, "fail_after": False})
    ids = [r.id for r in thrown(pg_db)]
    barrier = threading.Barrier(4)
    errors = []

    def run(i):
        barrier.wait()
        try:
            for message_id in ids:
                engines[i].deliver_thrown_message(message_id)
            engines[i].deliver_thrown_messages()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    children = instances_of(pg_db, "RC")
    assert len(children) == 3
    assert sorted(engines[0].instance_detail(c.id)["data"]["request"]["order_no"] for c in children) == \
        ["C0", "C1", "C2"]


def test_a_rolled_back_step_throws_nothing(engine, library):
    seen = []
    engine.on_committed.append(seen.extend)
    with pytest.raises(StepFailed):
        engine.start("request_parent", {"order_no": "A4", "amount": 1, "fail_after": True})
    assert thrown(engine.db) == []
    assert seen == []
    assert engine.deliver_thrown_messages() == {"delivered": [], "failed": []}
    assert instances_of(engine.db, "RC") == []


def test_a_thrown_message_reaches_only_the_waiting_instance_whose_correlation_key_matches(engine, library):
    first = engine.start("await_payment", {"order_no": "A1"})
    second = engine.start("await_payment", {"order_no": "B2"})

    payer = engine.start("pay_order", {"order_no": "B2", "amount": Decimal("9.90")})  # throws at its end event

    assert status(engine.db, payer) == "completed"
    [row] = thrown(engine.db)
    assert row.correlation == {"order_no": "B2"}  # computed from the message's correlation property
    outcome = engine.deliver_thrown_messages()
    assert outcome["delivered"] == [row.id]
    assert open_elements(engine.db, second) == ["ship"]
    assert engine.instance_detail(second)["data"]["payment"] == {"order_no": "B2", "amount": "9.90"}
    assert open_elements(engine.db, first) == [] and status(engine.db, first) == "waiting"
    assert thrown(engine.db)[0].outcome["delivered"] == [second]


def test_a_message_nobody_waits_for_is_kept_for_a_later_receiver(engine, library):
    engine.start("pay_order", {"order_no": "Z9", "amount": 5})
    assert engine.deliver_thrown_messages()["delivered"]
    with engine.db.transaction() as s:
        [kept] = s.scalars(select(BufferedMessage)).all()
    assert (kept.message_name, kept.correlation) == ("payment_received", {"order_no": "Z9"})
    waiter = engine.start("await_payment", {"order_no": "Z9"})
    assert open_elements(engine.db, waiter) == ["ship"]  # took the kept message on subscribing


def test_a_receiver_that_fails_is_an_incident_and_the_message_counts_as_delivered(engine, deploy, tmp_path):
    broken = bpmn_path("msg_throw_child.bpmn").read_text().replace(
        '<bpmn:userTask id="handle_request" name="Handle the request">',
        '<bpmn:scriptTask id="handle_request" name="Handle the request">'
    ).replace("</bpmn:userTask>", "<bpmn:script>x = 1 / 0</bpmn:script></bpmn:scriptTask>")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "msg_throw_child.bpmn").write_text(broken)
    shutil.copy(bpmn_path("msg_throw_parent.bpmn"), tmp_path / "lib")
    engine.deploy([tmp_path / "lib"])
    engine.start("request_parent", {"order_no": "A5", "amount": 1, "fail_after": False})

    outcome = engine.deliver_thrown_messages()

    assert outcome["failed"] == [] and len(outcome["delivered"]) == 1
    [row] = thrown(engine.db)
    [failure] = row.outcome["failed"]
    assert failure["process"] == "request_child" and "division by zero" in failure["error"]
    [incident] = [i for i in incidents(engine.db) if i.action["name"] == "start"]
    assert incident.action["start_message"]["origin"]["business_key"] == row.sender_business_key


# --- scenarios: thrown messages are recorded, and can be expected --------------------------

SCENARIO = """\
process: request_parent
scenarios:
  - name: the parent asks the child
    start:
      data: {order_no: "A1", amount: 12.5, fail_after: false}
    steps:
      - expect:
          tasks: [after_request]
          messages_sent:
            - message: x.requested
              payload: {order_no: "A1", amount: 12.5}
    end:
      messages_sent: [{message: x.requested}]
  - name: expects a payload it did not send
    start:
      data: {order_no: "A1", amount: 12.5, fail_after: false}
    steps:
      - expect:
          messages_sent:
            - message: x.requested
              payload: {order_no: "B7"}
  - name: expects a message it did not send
    start:
      data: {order_no: "A1", amount: 12.5, fail_after: false}
    steps:
      - expect:
          messages_sent: [{message: refund.requested}]
"""


def test_scenarios_record_thrown_messages_and_check_them(tmp_path):
    lib = tmp_path / "library"
    (lib / "scenarios").mkdir(parents=True)
    for name in ("msg_throw_parent.bpmn", "msg_throw_child.bpmn"):
        shutil.copy(bpmn_path(name), lib)
    (lib / "scenarios" / "request.scenario.yaml").write_text(SCENARIO)

    passed, wrong_payload, not_sent = run_paths(lib / "scenarios", None)

    assert passed.passed, passed.difference
    assert not wrong_payload.passed
    assert wrong_payload.difference == 'message x.requested: payload.order_no: expected "B7", got "A1"'
    assert not not_sent.passed
    assert not_sent.difference == "messages sent: expected refund.requested, but it was not sent (sent: [x.requested])"


def test_a_scenario_message_expectation_with_unknown_keys_is_a_clear_error(tmp_path):
    lib = tmp_path / "library"
    (lib / "scenarios").mkdir(parents=True)
    shutil.copy(bpmn_path("msg_throw_parent.bpmn"), lib)
    (lib / "scenarios" / "bad.scenario.yaml").write_text(
        "process: request_parent\nscenarios:\n  - name: typo\n    start: {data: {fail_after: false}}\n"
        "    steps:\n      - expect:\n          messages_sent: [{message: x.requested, paylod: {a: 1}}]\n")
    [result] = run_paths(lib / "scenarios", None)
    assert not result.passed and "paylod" in result.difference


# --- a real worker delivers it through the announced job ------------------------------------


@pytest.mark.redis
def test_a_worker_delivers_a_thrown_message_through_its_job(tmp_path, monkeypatch):
    import redis
    from support import redis_server_url, settings_for
    from test_workers import WorkerProcess, _wait_for

    from app.container import Hotline
    from app.migrate import upgrade

    url = redis_server_url()
    client = redis.Redis.from_url(url)
    client.flushdb()
    settings = settings_for(tmp_path, monkeypatch, redis_url=url)
    h = Hotline(settings)
    worker = None
    try:
        upgrade(h.db)
        h.engine.deploy([bpmn_path("msg_throw_parent.bpmn"), bpmn_path("msg_throw_child.bpmn")])
        worker = WorkerProcess(settings, url, tmp_path, sweep_seconds=60).start().swept()  # the job must do it
        h.engine.start("request_parent", {"order_no": "W1", "amount": 1, "fail_after": False})
        _wait_for(lambda: len(instances_of(h.db, "RC")) == 1, 15, "the child process to start", worker.log)
        assert "hotline-message-" in worker.log.read_text()
        assert thrown(h.db)[0].delivered_at is not None
    finally:
        if worker is not None:
            worker.kill(signal.SIGTERM)
        h.close()
        client.flushdb()
        client.close()
