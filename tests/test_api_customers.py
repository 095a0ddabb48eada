"""GET /api/v1/customers?phone= and /api/v1/customers/<id>: what an agent's screen (and a screen pop) reads.

Runs on SQLite and PostgreSQL. Only an active staff user logged in with HTTP Basic reads customers.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support import record_sample_call, settings_for
from test_cli import Cli
from werkzeug.security import generate_password_hash

from app import create_app, hotline
from app.models import InstanceStatus, ProcessInstance, ProcessModel, ProcessVersion
from app.services import calls, customers, identity

T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
AGENT = ("li.na", "demo-li.na")  # an active staff user and their password


@pytest.fixture
def app(db, tmp_path, monkeypatch):
    application = create_app(settings_for(tmp_path, monkeypatch, database_url=db.url))
    with db.transaction() as s:
        for username, password, active in (("li.na", "demo-li.na", True), ("former", "demo-former", False)):
            user = identity.ensure_user(s, username, groups=["hotline"])
            # A cheap hash keeps every request's login check fast here; check_password reads the
            # method from the stored hash, so the check itself is the real one.
            user.password_hash, user.is_active = generate_password_hash(password, "pbkdf2:sha256:1000"), active
        identity.ensure_user(s, "no.password", groups=["hotline"])
    yield application
    hotline(application).close()


@pytest.fixture
def client(app):
    return app.test_client()


def _call(s, linkedid: str, caller: str, hours: int, answered: bool) -> None:
    record_sample_call(s, linkedid, caller, T0 + timedelta(hours=hours), answered, agent="li.na")


@pytest.fixture
def zhao(db) -> int:
    """Zhao Lei: one number, a closed and an open ticket, an answered and an abandoned call."""
    with db.transaction() as s:
        cid = customers.register("13800138000", "赵磊", "zh", "mobile", _session=s)["customer_id"]
        customers.register("13912345678", "Sun Li", "en", _session=s)  # someone else
        model = ProcessModel(key="inbound_call", title="Call intake", file="inbound_call.bpmn",
                             business_key_prefix="CALL")
        s.add(model)
        s.flush()
        version = ProcessVersion(model_id=model.id, number=1, sha256="0" * 64, dialect="spiff", files={},
                                 elements={}, deployed_by="admin")
        s.add(version)
        s.flush()
        for key, status, hours in [("CALL-2026-000001", InstanceStatus.COMPLETED, 0),
                                   ("CALL-2026-000002", InstanceStatus.WAITING, 24)]:
            s.add(ProcessInstance(version_id=version.id, business_key=key, title=f"Ticket {key}", status=status,
                                  customer_id=cid, state="", started_by="li.na", started_at=T0 + timedelta(hours=hours),
                                  ended_at=T0 + timedelta(hours=1) if status == InstanceStatus.COMPLETED else None))
        _call(s, "1001.1", "138 0013 8000", 0, answered=True)
        _call(s, "1002.1", "+86 138-0013-8000", 30, answered=False)
        _call(s, "1003.1", "13912345678", 40, answered=True)  # Sun Li's
        calls.link_ticket(s, "1001.1", 1, "CALL-2026-000001")
    return cid


def test_find_by_phone_in_any_spelling(client, zhao):
    for spelling in ("13800138000", "+86 138-0013-8000", "008613800138000", "(+86) 138 0013 8000"):
        got = client.get("/api/v1/customers", query_string={"phone": spelling}, auth=AGENT)
        assert got.status_code == 200, (spelling, got.json)
        assert got.json == {"id": zhao, "name": "赵磊", "language": "zh", "notes": got.json["notes"],
                            "created_at": got.json["created_at"],
                            "phones": [{"number": "+8613800138000", "label": "mobile"}],
                            "tickets": 2, "open_tickets": 1, "calls": 2}
    assert datetime.fromisoformat(got.json["created_at"]).utcoffset() is not None


def test_unknown_phone_is_404_naming_the_normalized_number(client, zhao):
    got = client.get("/api/v1/customers?phone=138%200000%200009", auth=AGENT)
    assert got.status_code == 404
    assert got.json == {"error": "not_found", "phone": "+8613800000009",
                        "message": "no customer has the number +8613800000009"}


@pytest.mark.parametrize("query, field", [("phone=call%20me", "phone"), ("phone=123", "phone"), ("phone=", "phone"),
                                          ("", "phone"), ("phone=13800138000&page=2", "page")])
def test_a_phone_that_is_no_phone_number_is_422(client, zhao, query, field):
    got = client.get(f"/api/v1/customers?{query}", auth=AGENT)
    assert got.status_code == 422, got.json
    assert got.json["error"] == "invalid_input" and field in got.json["message"]
    assert "id" not in got.json


def test_show_by_id_with_tickets_and_calls(app, client, zhao):
    got = client.get(f"/api/v1/customers/{zhao}", auth=AGENT)
    assert got.status_code == 200
    body = got.json
    assert (body["customer"]["id"], body["customer"]["tickets"], body["customer"]["open_tickets"],
            body["customer"]["calls"]) == (zhao, 2, 1, 2)
    assert [(t["business_key"], t["status"], t["process"], t["process_title"]) for t in body["tickets"]] == [
        ("CALL-2026-000002", "waiting", "inbound_call", "Call intake"),
        ("CALL-2026-000001", "completed", "inbound_call", "Call intake")]
    assert [t["business_key"] for t in body["open_tickets"]] == ["CALL-2026-000002"]
    closed = body["tickets"][1]
    assert (closed["started_at"], closed["ended_at"]) == ("2026-11-20T01:00:00+00:00", "2026-11-20T02:00:00+00:00")
    assert body["tickets"][0]["ended_at"] is None
    assert [(c["linkedid"], c["status"], c["wait_seconds"], c["talk_seconds"], c["agent"], c["business_key"])
            for c in body["calls"]] == [("1002.1", "abandoned", 90, None, None, None),
                                        ("1001.1", "ended", 30, 60, "li.na", "CALL-2026-000001")]
    answered = body["calls"][1]
    assert (answered["started_at"], answered["answered_at"], answered["ended_at"]) == (
        "2026-11-20T01:00:00+00:00", "2026-11-20T01:00:35+00:00", "2026-11-20T01:01:35+00:00")
    assert (answered["direction"], answered["caller_number"], answered["queue"]) == ("inbound", "+8613800138000",
                                                                                    "water")

    # the same content as `customers show --json`, also with a limit
    cli = Cli(app)
    assert body == cli.json("customers", "show", str(zhao))
    short = client.get(f"/api/v1/customers/{zhao}?limit=1", auth=AGENT).json
    assert short == cli.json("customers", "show", str(zhao), "--limit", "1")
    assert [t["business_key"] for t in short["tickets"]] == ["CALL-2026-000002"]
    assert [c["linkedid"] for c in short["calls"]] == ["1002.1"] and short["customer"]["calls"] == 2


def test_unknown_or_malformed_id(client, zhao):
    missing = client.get("/api/v1/customers/999", auth=AGENT)
    assert missing.status_code == 404
    assert missing.json == {"error": "not_found", "customer_id": 999, "message": "customer 999 does not exist"}
    bad = client.get("/api/v1/customers/zhao", auth=AGENT)
    assert bad.status_code == 422
    assert bad.json == {"error": "invalid_input", "field": "customer_id",
                        "message": "'zhao' is not a customer id (a number like 12)"}


@pytest.mark.parametrize("limit", ["0", "501", "ten", "", "-1", "2.5"])
def test_a_bad_limit_is_422_naming_the_parameter(client, zhao, limit):
    got = client.get(f"/api/v1/customers/{zhao}?limit={limit}", auth=AGENT)
    assert got.status_code == 422, got.json
    assert got.json["error"] == "invalid_input" and got.json["message"].startswith("invalid request: limit: ")
    assert "limit" in got.json["fields"]


@pytest.mark.parametrize("auth", [None, ("li.na", "wrong-password"), ("nobody", "demo-li.na"),
                                  ("no.password", ""), ("", "")], ids=["none", "wrong-password", "unknown-user",
                                                                       "user-without-password", "empty"])
def test_no_or_wrong_credentials_are_401(client, zhao, auth):
    for path in ("/api/v1/customers?phone=13800138000", f"/api/v1/customers/{zhao}", "/api/v1/customers/999",
                 "/api/v1/customers?phone=call%20me"):
        got = client.get(path, auth=auth)
        assert got.status_code == 401, (path, got.json)
        assert got.json["error"] == "unauthenticated" and "赵磊" not in got.get_data(as_text=True)
        assert got.headers["WWW-Authenticate"].startswith("Basic ")


def test_a_bearer_token_is_no_login_and_a_disabled_user_is_refused(client, zhao):
    bearer = client.get(f"/api/v1/customers/{zhao}", headers={"Authorization": "Bearer abc"})
    assert bearer.status_code == 401
    disabled = client.get(f"/api/v1/customers/{zhao}", auth=("former", "demo-former"))
    assert disabled.status_code == 403
    assert disabled.json == {"error": "forbidden", "message": "user 'former' is disabled"}
    wrong = client.get(f"/api/v1/customers/{zhao}", auth=("former", "not-the-password"))
    assert wrong.status_code == 401  # a wrong password never tells whether the account is disabled
