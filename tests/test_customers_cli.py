"""A customer's history (tickets and calls, newest first) and `flask --app wsgi customers find|show`."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support import record_sample_call, settings_for
from test_cli import Cli

from app import create_app, hotline
from app.errors import InvalidInput, NotFound
from app.models import CustomerPhone, InstanceStatus, ProcessInstance, ProcessModel, ProcessVersion
from app.services import calls, customer_history, customers

T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, the hotline's default time zone


def _ticket(s, version: ProcessVersion, key: str, status: str, customer_id: int | None, hours: int,
            ended: bool = False) -> None:
    s.add(ProcessInstance(version_id=version.id, business_key=key, title=f"Ticket {key}", status=status,
                          customer_id=customer_id, state="", started_by="li.na",
                          started_at=T0 + timedelta(hours=hours),
                          ended_at=T0 + timedelta(hours=hours + 1) if ended else None))


def _call(s, linkedid: str, caller: str, hours: int, answered: bool, agent: str | None = None) -> None:
    record_sample_call(s, linkedid, caller, T0 + timedelta(hours=hours), answered, agent=agent)


@pytest.fixture
def seeded(db) -> dict:
    """Zhao Lei: two numbers, three tickets (one closed), two calls; Sun Li: one ticket, one call."""
    with db.transaction() as s:
        zhao = customers.register("13800138000", "赵磊", "zh", "mobile", _session=s)["customer_id"]
        customers.register("13800138000", _session=s)
        sun = customers.register("13912345678", "Sun Li", "en", _session=s)["customer_id"]
        s.add(CustomerPhone(customer_id=zhao, number="+861065529988", label="office"))
        model = ProcessModel(key="inbound_call", title="Call intake", file="inbound_call.bpmn",
                             business_key_prefix="CALL")
        s.add(model)
        s.flush()
        version = ProcessVersion(model_id=model.id, number=1, sha256="0" * 64, dialect="spiff", files={},
                                 elements={}, deployed_by="admin")
        s.add(version)
        s.flush()
        _ticket(s, version, "CALL-2026-000001", InstanceStatus.COMPLETED, zhao, 0, ended=True)
        _ticket(s, version, "CALL-2026-000002", InstanceStatus.WAITING, zhao, 24)
        _ticket(s, version, "CALL-2026-000003", InstanceStatus.ERROR, zhao, 48)
        _ticket(s, version, "CALL-2026-000004", InstanceStatus.WAITING, sun, 30)
        _call(s, "1001.1", "138 0013 8000", 0, answered=True, agent="li.na")
        _call(s, "1002.1", "010-6552-9988", 47, answered=False)
        _call(s, "1003.1", "13912345678", 30, answered=True, agent="wang.wei")
        _call(s, "1004.1", "anonymous", 50, answered=False)
        calls.link_ticket(s, "1001.1", 1, "CALL-2026-000001")
    return {"zhao": zhao, "sun": sun}


def test_history_lists_tickets_and_calls_newest_first(db, seeded):
    with db.transaction() as s:
        history = customer_history.history(s, seeded["zhao"])
    profile = history["customer"]
    assert (profile["name"], profile["language"], profile["tickets"], profile["open_tickets"], profile["calls"]) == (
        "赵磊", "zh", 3, 2, 2)
    assert profile["phones"] == [{"number": "+8613800138000", "label": "mobile"},
                                 {"number": "+861065529988", "label": "office"}]
    assert [(t["business_key"], t["process"], t["status"]) for t in history["tickets"]] == [
        ("CALL-2026-000003", "inbound_call", "error"), ("CALL-2026-000002", "inbound_call", "waiting"),
        ("CALL-2026-000001", "inbound_call", "completed")]
    closed = history["tickets"][2]
    assert (closed["started_at"], closed["ended_at"]) == (T0, T0 + timedelta(hours=1))
    assert [t["business_key"] for t in history["open_tickets"]] == ["CALL-2026-000003", "CALL-2026-000002"]
    assert [(c["linkedid"], c["status"], c["wait_seconds"], c["talk_seconds"], c["agent"], c["business_key"])
            for c in history["calls"]] == [("1002.1", "abandoned", 90, None, None, None),
                                           ("1001.1", "ended", 30, 60, "li.na", "CALL-2026-000001")]
    assert history["calls"][0]["started_at"] == T0 + timedelta(hours=47)


def test_history_limit_and_refusals(db, seeded):
    with db.transaction() as s:
        short = customer_history.history(s, seeded["zhao"], limit=1)
        assert [t["business_key"] for t in short["tickets"]] == ["CALL-2026-000003"]
        assert [c["linkedid"] for c in short["calls"]] == ["1002.1"]
        assert short["customer"]["tickets"] == 3  # the counts are never cut
        with pytest.raises(NotFound, match="customer 999 does not exist"):
            customer_history.history(s, 999)
        with pytest.raises(InvalidInput, match="'x1' is not a customer id"):
            customer_history.history(s, "x1")
        with pytest.raises(InvalidInput, match="limit must be a number from 1 to 500"):
            customer_history.history(s, seeded["zhao"], limit=0)


@pytest.fixture
def cli(db, tmp_path, monkeypatch):
    cli = Cli(create_app(settings_for(tmp_path, monkeypatch, database_url=db.url)))
    yield cli
    hotline(cli.app).close()


def test_customers_find_by_any_spelling(cli, seeded):
    found = cli.json("customers", "find", "+86 (10) 6552-9988")
    assert (found["id"], found["name"], found["open_tickets"], found["calls"]) == (seeded["zhao"], "赵磊", 2, 2)
    out = cli.run("customers", "find", "008613800138000").stdout
    assert out == (f"customer {seeded['zhao']}: 赵磊 [zh], 2 open ticket(s), 3 ticket(s), 2 call(s)\n"
                   "phones: +8613800138000 (mobile), +861065529988 (office)\n")


def test_customers_find_refusals(cli, seeded):
    assert cli.error("customers", "find", "13800000009") == "error: no customer has the number +8613800000009"
    assert cli.error("customers", "find", "call me").startswith("error: 'call me' is not a valid phone number")
    assert cli.json("customers", "find", "13800000009", code=1) == {
        "error": "not_found", "phone": "+8613800000009", "message": "no customer has the number +8613800000009"}


def test_customers_show(cli, seeded):
    shown = cli.json("customers", "show", str(seeded["sun"]))
    assert shown["customer"]["name"] == "Sun Li"
    assert [t["business_key"] for t in shown["tickets"]] == ["CALL-2026-000004"]
    assert [(c["direction"], c["status"], c["agent"], c["talk_seconds"]) for c in shown["calls"]] == [
        ("inbound", "ended", "wang.wei", 60)]
    assert shown["calls"][0]["started_at"] == (T0 + timedelta(hours=30)).isoformat()

    out = cli.run("customers", "show", str(seeded["zhao"]), "--limit", "2").stdout
    lines = out.splitlines()
    assert lines[0] == f"customer {seeded['zhao']}: 赵磊 [zh], 2 open ticket(s), 3 ticket(s), 2 call(s)"
    open_part = out.split("open tickets:")[1].split("recent tickets:")[0]
    assert "CALL-2026-000003" in open_part and "CALL-2026-000001" not in open_part
    recent = out.split("recent tickets:")[1].split("recent calls:")[0]
    assert recent.index("CALL-2026-000003") < recent.index("CALL-2026-000002") and "CALL-2026-000001" not in recent
    call_lines = out.split("recent calls:")[1].strip().splitlines()
    assert call_lines[0].split() == ["TIME", "DIRECTION", "STATUS", "QUEUE", "WAIT", "S", "TALK", "S", "AGENT",
                                     "TICKET"]
    assert call_lines[1].split() == ["2026-11-22", "08:00", "inbound", "abandoned", "water", "90"]  # Shanghai time
    assert call_lines[2].split() == ["2026-11-20", "09:00", "inbound", "ended", "water", "30", "60", "li.na",
                                     "CALL-2026-000001"]


def test_customers_show_of_a_customer_with_nothing_yet(cli, db):
    with db.transaction() as s:
        cid = customers.register("13700000000", _session=s)["customer_id"]
    out = cli.run("customers", "show", str(cid)).stdout
    assert f"customer {cid}: (no name) [zh], 0 open ticket(s), 0 ticket(s), 0 call(s)" in out
    assert "(no open tickets)" in out and "(no tickets)" in out and "(no calls)" in out


def test_customers_show_refusals(cli, seeded):
    assert cli.error("customers", "show", "999") == "error: customer 999 does not exist"
    assert cli.error("customers", "show", "zhao") == "error: 'zhao' is not a customer id (a number like 12)"
    assert cli.json("customers", "show", "999", code=1) == {
        "error": "not_found", "customer_id": 999, "message": "customer 999 does not exist"}
