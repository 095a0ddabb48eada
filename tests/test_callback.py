"""The callback process (bpmn/callback.bpmn) where a scenario cannot reach: surveys already on
file (the per-customer limit), what is stored for reports, the SMS text, the scheduling and
sampling rules on their own, and the `surveys` CLI. Every path of the diagram is also played
in bpmn/scenarios/callback.scenario.yaml.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from support import settings_for

from app import create_app, hotline
from app.config import SurveySettings
from app.engine import ProcessEngine, clock
from app.errors import InvalidInput, NotFound
from app.models import ProcessInstance
from app.models.notification import Notification
from app.models.survey import SurveyOutcome, SurveyResult
from app.services import callbacks, customers, identity, surveys
from app.services.calendars import build_calendar, default_calendar

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY_9AM = datetime(2026, 1, 5, 9, 0, tzinfo=SHANGHAI)


@pytest.fixture
def hotline_engine(db):
    engine = ProcessEngine(db, ROOT / "forms")
    with db.transaction() as s:
        identity.ensure_user(s, "li.na", groups=["hotline"])
        identity.ensure_user(s, "zhang.min", groups=["hotline-supervisors"])
    engine.deploy([ROOT / "bpmn"])
    clock.freeze(MONDAY_9AM)
    yield engine
    clock.reset()


def _customer(db, phone: str = "13800138000", name: str = "王芳", language: str = "zh") -> int:
    with db.transaction() as s:
        return customers.register(phone, name, language, _session=s)["customer_id"]


def _request(engine: ProcessEngine, **payload) -> int:
    started = engine.correlate("callback.requested", payload=payload).started
    assert len(started) == 1
    return started[0]


def _call(engine: ProcessEngine, iid: int, answers: dict) -> None:
    """Wait for the slot, then make the call (the one open task) as li.na."""
    clock.advance(seconds=1)
    engine.fire_instance_timers(iid)
    tasks = engine.instance_detail(iid)["tasks"]
    assert len(tasks) == 1, tasks
    engine.complete(tasks[0]["id"], "li.na", {"dial": engine.instance_detail(iid)["data"]["dial"], **answers})


def _path(detail: dict) -> list[str]:
    return [e["element_id"] for e in detail["history"] if e["kind"] == "step_completed"]


def _survey_on_file(db, customer_id: int, asked_days_ago: float, outcome: str = SurveyOutcome.ANSWERED) -> None:
    with db.transaction() as s:
        s.add(SurveyResult(customer_id=customer_id, business_key="CB-2025-000001", outcome=outcome,
                           score=4 if outcome == SurveyOutcome.ANSWERED else None,
                           asked_at=clock.now() - timedelta(days=asked_days_ago)))


# --- the per-customer limit --------------------------------------------------------------------

def test_a_customer_surveyed_within_min_days_is_not_asked_again(hotline_engine):
    engine, db = hotline_engine, hotline_engine.db
    cid = _customer(db)
    _survey_on_file(db, cid, asked_days_ago=10)
    iid = _request(engine, kind="survey", customer_id=cid, phone="13800138000", source_ticket="WO-2026-000002",
                   sample_rate=1)
    detail = engine.instance_detail(iid)
    assert detail["status"] == "completed"
    assert _path(detail)[-3:] == ["check_sampling", "sampled", "no_survey"]
    sampling = detail["data"]["sampling"]
    assert (sampling["survey"], sampling["reason"], sampling["survey_id"]) == (False, "surveyed_recently", None)
    assert "asked on 2025-12-26" in sampling["detail"] and "30 days" in sampling["detail"]
    with db.transaction() as s:
        assert len(s.scalars(select(SurveyResult)).all()) == 1  # nothing new written


def test_a_survey_older_than_min_days_does_not_block_and_the_limit_comes_from_the_environment(
        hotline_engine, monkeypatch):
    engine, db = hotline_engine, hotline_engine.db
    cid = _customer(db)
    _survey_on_file(db, cid, asked_days_ago=31)
    first = _request(engine, kind="survey", customer_id=cid, phone="13800138000", sample_rate=1)
    assert engine.instance_detail(first)["data"]["sampling"]["reason"] == "sampled"

    # A survey being asked right now counts too: a second request for the customer is refused ...
    second = _request(engine, kind="survey", customer_id=cid, phone="13800138000", sample_rate=1)
    assert engine.instance_detail(second)["data"]["sampling"]["reason"] == "surveyed_recently"
    # ... unless the limit is off (HOTLINE_SURVEY_MIN_DAYS=0).
    monkeypatch.setenv("HOTLINE_SURVEY_MIN_DAYS", "0")
    third = _request(engine, kind="survey", customer_id=cid, phone="13800138000", sample_rate=1)
    data = engine.instance_detail(third)["data"]
    assert data["rules"]["min_days"] == 0 and data["sampling"]["reason"] == "sampled"


def test_a_request_may_override_the_limit(hotline_engine):
    engine, db = hotline_engine, hotline_engine.db
    cid = _customer(db)
    _survey_on_file(db, cid, asked_days_ago=10)
    iid = _request(engine, kind="survey", customer_id=cid, phone="13800138000", sample_rate=1, min_days=7)
    assert engine.instance_detail(iid)["data"]["sampling"]["reason"] == "sampled"


# --- what is stored ----------------------------------------------------------------------------

def test_an_answered_survey_is_stored_with_its_ticket_process_agent_and_answers(hotline_engine):
    engine, db = hotline_engine, hotline_engine.db
    cid = _customer(db, "13900002222", "Zhao Lei", "en")
    intake = engine.start("inbound_call", {"channel": "phone", "caller_phone": "13900002222"}, "li.na")
    with db.transaction() as s:
        source = s.get(ProcessInstance, intake).business_key
    iid = _request(engine, kind="survey", customer_id=cid, phone="+86 139 0000 2222", source_ticket=source,
                   group="water-dept", sample_rate=1)
    _call(engine, iid, {"outcome": "answered", "score": 2, "resolved": False,
                        "comment": "Three visits before it was fixed"})
    detail = engine.instance_detail(iid)
    assert detail["status"] == "completed" and _path(detail)[-1] == "survey_done"
    assert "notify_supervisors" in _path(detail)  # low and not resolved
    with db.transaction() as s:
        row = s.scalars(select(SurveyResult)).one()
        supervisors_told = s.scalars(select(Notification).where(Notification.channel == "in_app")).all()
    assert (row.customer_id, row.source_ticket, row.process, row.group_name) == (cid, source, "inbound_call",
                                                                                 "water-dept")
    assert (row.outcome, row.score, row.resolved, row.comment) == ("answered", 2, False,
                                                                   "Three visits before it was fixed")
    assert (row.agent, row.language, row.business_key) == ("li.na", "en", detail["business_key"])
    assert detail["business_key"].startswith("CB-")
    assert row.answered_at == row.closed_at == clock.now()
    assert row.asked_at == clock.now() - timedelta(seconds=1)
    # water-dept has no supervisor group and nobody is in 'supervisors': nobody to tell, and no failure.
    assert supervisors_told == []


def test_a_survey_nobody_answers_is_stored_as_unreachable_and_the_customer_gets_an_sms_in_english(hotline_engine):
    engine, db = hotline_engine, hotline_engine.db
    cid = _customer(db, "13900002222", "Zhao Lei", "en")
    iid = _request(engine, kind="survey", customer_id=cid, phone="13900002222", sample_rate=1, max_attempts=1)
    _call(engine, iid, {"outcome": "busy"})
    detail = engine.instance_detail(iid)
    assert _path(detail)[-1] == "unreachable" and detail["data"]["result"] == "unreachable"
    with db.transaction() as s:
        row = s.scalars(select(SurveyResult)).one()
        sms = s.scalars(select(Notification).where(Notification.channel == "sms")).one()
    assert (row.outcome, row.score, row.answered_at) == ("unreachable", None, None)
    assert sms.recipient == "+8613900002222" and sms.instance_id == iid
    assert sms.text.startswith("Hotline: we tried several times to call you back")


def test_the_sms_follows_the_customers_language(hotline_engine):
    engine, db = hotline_engine, hotline_engine.db
    cid = _customer(db)  # zh
    iid = _request(engine, kind="requested", customer_id=cid, phone="13800138000", max_attempts=1)
    _call(engine, iid, {"outcome": "no_answer"})
    assert engine.instance_detail(iid)["data"]["language"] == "zh"
    with db.transaction() as s:
        sms = s.scalars(select(Notification).where(Notification.channel == "sms")).one()
    assert sms.text.startswith("【热线】我们多次回电均未能联系到您")


def test_a_retried_sampling_step_returns_the_same_survey(db):
    with db.transaction() as s:
        cid = customers.register("13800138000", "王芳", "zh", _session=s)["customer_id"]
        first = surveys.should_survey(cid, "WO-1", 1, 30, _session=s, _instance_id=99)
        again = surveys.should_survey(cid, "WO-1", 1, 30, _session=s, _instance_id=99)
        assert first["survey"] and again["survey"] and first["survey_id"] == again["survey_id"]
        assert len(s.scalars(select(SurveyResult)).all()) == 1


def test_storing_a_survey_checks_what_it_is_given(db):
    with db.transaction() as s:
        cid = customers.register("13800138000", "王芳", "zh", _session=s)["customer_id"]
        survey_id = surveys.should_survey(cid, "WO-1", 1, 30, _session=s, _instance_id=7)["survey_id"]
        with pytest.raises(NotFound, match="survey 999 does not exist"):
            surveys.store(999, "answered", 5, _session=s)
        with pytest.raises(InvalidInput, match="outcome must be one of: answered, refused, wrong_number"):
            surveys.store(survey_id, "pending", _session=s)
        with pytest.raises(InvalidInput, match="needs a score from 1 to 5 \\(got 7\\)"):
            surveys.store(survey_id, "answered", 7, _session=s)
        with pytest.raises(InvalidInput, match="needs a score from 1 to 5 \\(got None\\)"):
            surveys.store(survey_id, "answered", None, _session=s)
        with pytest.raises(InvalidInput, match="resolved must be true or false"):
            surveys.store(survey_id, "answered", 3, resolved="maybe", _session=s)
        stored = surveys.store(survey_id, "answered", 3, " fine ", True, agent="wang.wei", low_score=3, _session=s)
        assert stored == {"survey_id": survey_id, "outcome": "answered", "score": 3, "low": True}
        row = s.get(SurveyResult, survey_id)
        assert (row.comment, row.agent, row.resolved) == ("fine", "wang.wei", True)


# --- sampling ----------------------------------------------------------------------------------

def test_sampling_is_decided_by_the_ticket_and_close_to_the_rate():
    tickets = [f"WO-2026-{n:06d}" for n in range(1, 2001)]
    picked = [t for t in tickets if surveys.sampled(t, 0.3)]
    assert 0.26 < len(picked) / len(tickets) < 0.34
    assert picked == [t for t in tickets if surveys.sampled(t, 0.3)]  # the same answer every time
    assert all(surveys.sampled(t, 1) for t in tickets[:50])
    assert not any(surveys.sampled(t, 0) for t in tickets[:50])
    assert set(picked) <= {t for t in tickets if surveys.sampled(t, 0.5)}  # a higher rate keeps the sample


def test_the_survey_form_asks_for_a_comment_exactly_for_low_scores():
    form = json.loads((ROOT / "forms" / "callback_survey.json").read_text())
    comment = next(f for f in form["fields"] if f["name"] == "comment")
    assert comment["required_if"] == {"score": list(range(1, SurveySettings().low_score + 1))}


# --- settings ----------------------------------------------------------------------------------

def test_settings_come_from_the_environment_and_the_diagram_may_override_them(monkeypatch):
    assert callbacks.settings() == {"max_attempts": 3, "sample_rate": 0.3, "min_days": 30, "low_score": 2,
                                    "sla_hours": 2}
    monkeypatch.setenv("HOTLINE_SURVEY_SAMPLE_RATE", "0.5")
    monkeypatch.setenv("HOTLINE_CALLBACK_MAX_ATTEMPTS", "5")
    assert callbacks.settings()["sample_rate"] == 0.5 and callbacks.settings()["max_attempts"] == 5
    assert callbacks.settings(max_attempts=2, sample_rate=1, low_score=3, sla_hours=0.5) == {
        "max_attempts": 2, "sample_rate": 1.0, "min_days": 30, "low_score": 3, "sla_hours": 0.5}
    with pytest.raises(InvalidInput, match="sample_rate must be a number from 0 to 1 \\(got 2\\)"):
        callbacks.settings(sample_rate=2)
    with pytest.raises(InvalidInput, match="max_attempts must be a whole number from 1 to 20"):
        callbacks.settings(max_attempts=0)
    with pytest.raises(InvalidInput, match="sla_hours must be a number of working hours above 0"):
        callbacks.settings(sla_hours=0)


@pytest.mark.parametrize("name, value, message", [
    ("HOTLINE_SURVEY_SAMPLE_RATE", "lots", "HOTLINE_SURVEY_SAMPLE_RATE='lots' is not a number"),
    ("HOTLINE_SURVEY_SAMPLE_RATE", "1.5", "HOTLINE_SURVEY_SAMPLE_RATE='1.5' must be between 0.0 and 1.0"),
    ("HOTLINE_SURVEY_MIN_DAYS", "2.5", "HOTLINE_SURVEY_MIN_DAYS='2.5' is not a whole number"),
    ("HOTLINE_SURVEY_LOW_SCORE", "6", "HOTLINE_SURVEY_LOW_SCORE='6' must be between 1 and 5"),
])
def test_a_bad_setting_names_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError) as info:
        SurveySettings.from_env()
    assert str(info.value) == message


# --- scheduling --------------------------------------------------------------------------------

def _slot(now: datetime, attempts: int = 0, **kw) -> dict:
    return callbacks.next_slot(default_calendar(), now, attempts, **kw)


def _local(slot: dict) -> datetime:
    return datetime.fromisoformat(slot["at"]).astimezone(SHANGHAI)


def test_slots_fall_inside_working_hours():
    lunch = datetime(2026, 1, 5, 12, 10, tzinfo=SHANGHAI)
    assert _local(_slot(lunch)) == datetime(2026, 1, 5, 13, 0, tzinfo=SHANGHAI)
    assert _slot(lunch)["moved"] is True
    assert _local(_slot(MONDAY_9AM, delay="PT5M")) == MONDAY_9AM + timedelta(minutes=5)
    friday_evening = datetime(2026, 1, 9, 17, 50, tzinfo=SHANGHAI)
    assert _local(_slot(friday_evening, delay="PT30M")) == datetime(2026, 1, 12, 9, 0, tzinfo=SHANGHAI)


def test_a_preferred_time_in_the_past_or_with_an_offset():
    assert _local(_slot(MONDAY_9AM, preferred_at="2026-01-01T10:00")) == MONDAY_9AM  # already past: now
    utc = _slot(MONDAY_9AM, preferred_at="2026-01-05T06:30:00+00:00")  # 14:30 in Shanghai
    assert _local(utc) == datetime(2026, 1, 5, 14, 30, tzinfo=SHANGHAI) and utc["moved"] is False
    with pytest.raises(InvalidInput, match="preferred_at 'tomorrow' is not an ISO date and time"):
        _slot(MONDAY_9AM, preferred_at="tomorrow")


def test_retries_wait_longer_each_time_and_skip_holidays():
    assert _local(_slot(MONDAY_9AM, 1)) == MONDAY_9AM + timedelta(minutes=30)
    assert _local(_slot(MONDAY_9AM, 2)) == MONDAY_9AM + timedelta(hours=2)
    assert _local(_slot(MONDAY_9AM, 3)) == datetime(2026, 1, 6, 9, 0, tzinfo=SHANGHAI)
    assert _local(_slot(MONDAY_9AM, 7)) == datetime(2026, 1, 6, 9, 0, tzinfo=SHANGHAI)  # the last delay repeats
    assert _slot(MONDAY_9AM, 1)["attempt"] == 2
    holiday = build_calendar("office", "Asia/Shanghai", {d: ("09:00-18:00",) for d in range(5)},
                             holidays={"2026-01-06": "Company day"})
    slot = callbacks.next_slot(holiday, MONDAY_9AM, 3)
    assert _local(slot) == datetime(2026, 1, 7, 9, 0, tzinfo=SHANGHAI) and slot["calendar"] == "office"
    custom = _slot(MONDAY_9AM, 2, retry_delays=["PT10M", "P1D"])
    assert _local(custom) == MONDAY_9AM + timedelta(days=1)


@pytest.mark.parametrize("delays, message", [
    (["soon"], "retry_delays 'soon' is not an ISO 8601 duration"),
    (["PT"], "retry_delays 'PT' is not an ISO 8601 duration"),
    (["P1M"], "retry_delays 'P1M' is not an ISO 8601 duration"),
])
def test_a_bad_retry_delay_is_named(delays, message):
    with pytest.raises(InvalidInput, match=message):
        _slot(MONDAY_9AM, 1, retry_delays=delays)


def test_the_schedule_operation_uses_the_stored_default_calendar(db):
    with db.transaction() as s:
        slot = callbacks.schedule("2026-01-10T02:00:00+00:00", _session=s)  # Saturday 10:00 in Shanghai
    assert slot["at"] == "2026-01-12T01:00:00+00:00" and slot["calendar"] == "default"
    with db.transaction() as s, pytest.raises(Exception, match="no business calendar 'night'"):
        callbacks.schedule("2026-01-10T02:00:00+00:00", calendar="night", _session=s)


# --- reports and the CLI -------------------------------------------------------------------------

def _rows(db) -> None:
    now = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    data = [("water-dept", "work_order", "li.na", "answered", 5, True, now - timedelta(days=40)),
            ("water-dept", "work_order", "li.na", "answered", 1, False, now),
            ("water-dept", "inbound_call", "wang.wei", "answered", 4, True, now),
            ("hotline", "inbound_call", "wang.wei", "refused", None, None, now),
            ("hotline", "inbound_call", "wang.wei", "answered", 2, True, now)]
    with db.transaction() as s:
        for n, (group, process, agent, outcome, score, resolved, at) in enumerate(data, 1):
            s.add(SurveyResult(customer_id=None, business_key=f"CB-2026-{n:06d}", source_ticket=f"WO-2026-{n:06d}",
                               process=process, group_name=group, agent=agent, outcome=outcome, score=score,
                               resolved=resolved, comment="late" if score and score <= 2 else "", asked_at=at,
                               answered_at=at if score else None, closed_at=at))


def test_report_per_group_process_and_month(db):
    _rows(db)
    with db.transaction() as s:
        rows = surveys.results(s)
        by_group = surveys.report(rows, "group", low_score=2)
        by_process = surveys.report(rows, "process", low_score=2)
        by_month = surveys.report(rows, "month", low_score=2, zone=SHANGHAI)
        since = surveys.report(surveys.results(s, since=datetime(2026, 3, 1, tzinfo=UTC)), "group", low_score=2)
    assert by_group == [
        {"group": "hotline", "asked": 2, "answered": 1, "average_score": Decimal("2.00"), "low_scores": 1,
         "low_share": Decimal("1.000"), "unresolved": 0},
        {"group": "water-dept", "asked": 3, "answered": 3, "average_score": Decimal("3.33"), "low_scores": 1,
         "low_share": Decimal("0.333"), "unresolved": 1}]
    assert [(r["process"], r["answered"], r["average_score"]) for r in by_process] == [
        ("inbound_call", 2, Decimal("3.00")), ("work_order", 2, Decimal("3.00"))]
    assert [(r["month"], r["asked"]) for r in by_month] == [("2026-01", 1), ("2026-03", 4)]
    assert [(r["group"], r["asked"]) for r in since] == [("hotline", 2), ("water-dept", 2)]
    with pytest.raises(InvalidInput, match="report by must be one of: group, process"):
        surveys.report([], "colour")


def test_the_surveys_cli_lists_and_reports(db, tmp_path, monkeypatch):
    app = create_app(settings_for(tmp_path, monkeypatch, database_url=db.url))
    runner = app.test_cli_runner()
    try:
        _rows(db)
        listed = json.loads(runner.invoke(args=["surveys", "list", "--json"]).stdout)
        assert [r["ticket"] for r in listed][-1] == "CB-2026-000001" and len(listed) == 5
        recent = json.loads(runner.invoke(args=["surveys", "list", "--since", "2026-03-01", "--json"]).stdout)
        assert len(recent) == 4
        refused = json.loads(runner.invoke(args=["surveys", "list", "--outcome", "refused", "--json"]).stdout)
        assert [r["ticket"] for r in refused] == ["CB-2026-000004"]
        report = json.loads(runner.invoke(args=["surveys", "report", "--by", "process", "--json"]).stdout)
        assert [(r["process"], r["average_score"]) for r in report] == [("inbound_call", "3.00"),
                                                                       ("work_order", "3.00")]
        human = runner.invoke(args=["surveys", "report"])
        assert human.exit_code == 0
        assert human.stdout.splitlines()[0].split()[:4] == ["GROUP", "ASKED", "ANSWERED", "AVERAGE"]
        assert "33.3%" in human.stdout and "100.0%" in human.stdout
        listing = runner.invoke(args=["surveys", "list"])
        assert "CB-2026-000002" in listing.stdout and "late" in listing.stdout
        bad = runner.invoke(args=["surveys", "list", "--since", "last week"])
        assert bad.exit_code == 1
        assert bad.stderr.strip() == "error: --since: 'last week' is not a date like 2026-03-01 or 2026-03-01T08:00"
    finally:
        hotline(app).close()
