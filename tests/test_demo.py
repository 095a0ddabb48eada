"""Demo data (app/services/demo.py): the staff and the sample tickets a new user sees after `make run`,
one waiting in each process's inbox, seeded through the engine's public API, on SQLite and PostgreSQL.
Seeding twice must not double anything.
"""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from support import settings_for
from test_iou_collection import ROOT, _default_levels

from app import serve
from app.container import Hotline
from app.engine import ProcessEngine, clock
from app.errors import InvalidInput
from app.models import Customer, HumanTask, ProcessInstance, ProcessModel, ProcessVersion, TaskStatus
from app.models.iou import Iou
from app.models.refund import Refund
from app.services import demo, dunning, ious

NOW = datetime(2026, 3, 4, 2, 30, tzinfo=UTC)  # Wednesday 10:30 in Shanghai

# Where each sample stands: its process, and the open tasks (element, group) a user finds in the inboxes.
EXPECTED = {
    "wo_accept": ("work_order", [("accept_water", ["water-dept"])]),
    "wo_field": ("work_order", [("field_power", ["power-dept"])]),
    "refund": ("refund", [("approve_lead", ["hotline-leads"])]),
    "iou": ("iou_collection", [("call_customer", ["collections"])]),
    "callback": ("callback", []),  # waits for its slot tomorrow morning
}


@pytest.fixture
def library(db):
    clock.freeze(NOW)
    engine = ProcessEngine(db, ROOT / "forms")
    with db.transaction() as s:
        if not dunning.levels(s):  # PostgreSQL test databases are emptied between tests, migrations' rows too
            dunning.replace_levels(s, _default_levels())
    engine.deploy([ROOT / "bpmn"])
    return engine


def _samples(db) -> dict[str, list[dict]]:
    with db.transaction() as s:
        found = demo.sample_instances(s)
        out = {}
        for name, ids in found.items():
            rows = []
            for iid in ids:
                instance = s.get(ProcessInstance, iid)
                key = s.scalar(select(ProcessModel.key)
                               .join(ProcessVersion, ProcessVersion.model_id == ProcessModel.id)
                               .where(ProcessVersion.id == instance.version_id))
                tasks = s.scalars(select(HumanTask)
                                  .where(HumanTask.instance_id == iid, HumanTask.status.in_(TaskStatus.ACTIVE))
                                  .order_by(HumanTask.id)).all()
                rows.append({"process": key, "status": instance.status, "customer_id": instance.customer_id,
                             "tasks": [(t.element_id, t.candidate_groups, t.assignee) for t in tasks]})
            out[name] = rows
        return out


def test_seeding_twice_gives_each_process_its_samples_once(library, db):
    first = demo.seed_sample_tickets(db, library, now=clock.now())
    assert sorted(first) == sorted(EXPECTED)
    again = demo.seed_sample_tickets(db, library, now=clock.now())
    assert again == {}  # nothing opened the second time
    samples = _samples(db)
    for name, (process, tasks) in EXPECTED.items():
        assert len(samples[name]) == 1, f"{name}: {len(samples[name])} tickets"
        [sample] = samples[name]
        assert sample["process"] == process and sample["status"] in ("running", "waiting"), (name, sample)
        assert [(element, groups) for element, groups, _ in sample["tasks"]] == tasks, name
        assert sample["customer_id"] is not None, f"{name}: not filed under its customer"
    with db.transaction() as s:
        per_process = Counter(s.scalars(select(ProcessModel.key).join(ProcessVersion, ProcessVersion.model_id ==
                                                                      ProcessModel.id)
                                        .join(ProcessInstance, ProcessInstance.version_id == ProcessVersion.id)))
        assert per_process == {"work_order": 2, "refund": 1, "iou_collection": 1, "callback": 1}
        assert s.scalar(select(func.count()).select_from(Customer)) == len(demo.DEMO_CUSTOMERS)
        assert s.scalar(select(func.count()).select_from(Refund)) == 1
        assert s.scalar(select(func.count()).select_from(Iou)) == 1


def test_the_samples_stand_where_a_new_user_expects_them(library, db):
    opened = demo.seed_sample_tickets(db, library, now=clock.now())
    # the IOU: three installments, the first two days overdue, its collection call with the agent
    with db.transaction() as s:
        iou = ious.detail(ious.find(s, s.scalar(select(Iou.id))))
    assert [(i["due_date"].isoformat(), str(i["amount"]), i["status"]) for i in iou["installments"]] == [
        ("2026-03-02", "1200.00", "open"), ("2026-04-01", "1200.00", "open"), ("2026-05-01", "1200.00", "open")]
    [call] = library.instance_detail(opened["iou"])["tasks"]
    assert (call["element_id"], call["assignee"]) == ("call_customer", "xu.fang")
    # the work order in field work went through the hotline and the department's acceptance
    detail = library.instance_detail(opened["wo_field"])
    assert detail["data"]["department"] == "power-dept" and detail["data"]["accept_decision"] == "accept"
    # the refund waits for the team lead: 680.00 CNY goes to lead and finance
    refund = library.instance_detail(opened["refund"])["data"]["refund"]
    assert (refund["amount"], refund["currency"], refund["status"]) == ("680.00", "CNY", "requested")
    # the callback is scheduled in tomorrow's working hours
    slot = library.instance_detail(opened["callback"])["data"]["slot"]
    assert slot["at"].startswith("2026-03-05T02:00")  # 10:00 in Shanghai
    # every title is readable in both languages
    for title in demo.SAMPLE_TITLES.values():
        assert " · " in title and any("\u4e00" <= c <= "\u9fff" for c in title)


def test_a_process_that_is_not_deployed_gets_no_sample_and_the_rest_still_seed(db):
    clock.freeze(NOW)
    engine = ProcessEngine(db, ROOT / "forms")
    engine.deploy([ROOT / "bpmn" / "refund.bpmn", ROOT / "bpmn" / "refund_approval.dmn",
                   ROOT / "bpmn" / "escalation.bpmn"])
    assert sorted(demo.seed_sample_tickets(db, engine, now=clock.now())) == ["refund"]
    assert demo.seed_sample_tickets(db, engine, now=clock.now()) == {}


def test_make_run_on_a_fresh_database_then_again_seeds_every_process_once(tmp_path, monkeypatch):
    """What `make run` does (app/serve.prepare: migrate, staff, deploy, the call samples and the
    samples of the other processes), twice, as a second `make run` would."""
    h = Hotline(settings_for(tmp_path, monkeypatch, bpmn_dir=ROOT / "bpmn", forms_dir=ROOT / "forms"))
    try:
        for _ in range(2):
            serve.prepare(h)
        samples = _samples(h.db)
        assert {name: len(rows) for name, rows in samples.items()} == {name: 1 for name in EXPECTED}
        with h.db.transaction() as s:
            calls = s.scalar(select(func.count()).select_from(ProcessInstance)
                             .join(ProcessVersion, ProcessInstance.version_id == ProcessVersion.id)
                             .join(ProcessModel, ProcessVersion.model_id == ProcessModel.id)
                             .where(ProcessModel.key == "inbound_call"))
        assert calls > 0  # make run's own call-intake samples are still there, not doubled by the second run
        first_calls = calls
        serve.prepare(h)
        with h.db.transaction() as s:
            assert s.scalar(select(func.count()).select_from(ProcessInstance)
                            .join(ProcessVersion, ProcessInstance.version_id == ProcessVersion.id)
                            .join(ProcessModel, ProcessVersion.model_id == ProcessModel.id)
                            .where(ProcessModel.key == "inbound_call")) == first_calls
    finally:
        h.close()


def test_a_sample_that_cannot_be_opened_is_reported_and_the_others_still_open(library, db, caplog):
    class RefusingRefunds:  # the engine, except that starting a refund is refused (say a changed form)
        def __getattr__(self, name):
            return getattr(library, name)

        def start(self, key, data=None, actor="system", **kw):
            if key == "refund":
                raise InvalidInput("amount: Not a valid number")
            return library.start(key, data, actor, **kw)

    opened = demo.seed_sample_tickets(db, RefusingRefunds(), now=clock.now())
    assert sorted(opened) == sorted(set(EXPECTED) - {"refund"})
    assert "demo sample refund (refund) not opened: amount: Not a valid number" in caplog.text
    assert sorted(demo.seed_sample_tickets(db, library, now=clock.now())) == ["refund"]  # the next run opens it
