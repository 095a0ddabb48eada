"""`flask --app wsgi ious list|show|pay` and `dunning list|import`, in-process, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select
from support import settings_for
from test_cli import Cli
from test_iou_collection import LADDER, ROOT, START, _engine, start, the_iou

from app import create_app, hotline
from app.engine import clock
from app.models.iou import IouPayment
from app.services import dunning


@pytest.fixture
def cli(db, tmp_path, monkeypatch):
    clock.freeze(START)
    cli = Cli(create_app(settings_for(tmp_path, monkeypatch, database_url=db.url, bpmn_dir=ROOT / "bpmn",
                                      forms_dir=ROOT / "forms")))
    _engine(db)  # staff, customers and the diagram in this database
    yield cli
    hotline(cli.app).close()


def test_ious_pay_books_the_payment_and_advances_the_process(cli, db):
    engine = hotline(cli.app).engine
    iid = start(engine, due_date=None, installments=[{"due_date": "2026-01-15", "amount": "400.00"},
                                                     {"due_date": "2026-02-15", "amount": "600.00"}])
    key = the_iou(db)["business_key"]

    paid = cli.json("ious", "pay", key, "--installment", "1", "--amount", "150.00", "--method", "wechat_pay",
                    "--reference", "WX-1", "--user", "li.na")
    assert (paid["amount"], paid["remaining"], paid["settled"]) == ("150.00", "250.00", False)
    assert paid["message"]["delivered"] == [iid]

    out = cli.run("ious", "pay", "1", "--installment", "1", "--amount", "250.00").stdout
    assert "250.00 CNY on installment 1; installment settled" in out and "took the payment" in out
    cli.json("ious", "pay", "1", "--installment", "2", "--amount", "600.00")
    assert engine.instance_detail(iid)["status"] == "completed"

    shown = cli.json("ious", "show", key)
    assert (shown["status"], shown["paid"], shown["remaining"]) == ("paid", "1000.00", "0.00")
    assert [(p["amount"], p["method"], p["recorded_by"]) for p in shown["installments"][0]["payments"]] == [
        ("150.00", "wechat_pay", "li.na"), ("250.00", "cash", "admin")]
    assert [(r["business_key"], r["status"]) for r in cli.json("ious", "list")] == [(key, "paid")]
    assert cli.json("ious", "list", "--status", "open") == []
    assert key in cli.run("ious", "list").stdout
    human = cli.run("ious", "show", key).stdout
    assert f"{key}: 1000.00 CNY, paid, owed 0.00, agent li.na" in human
    assert "#1 due 2026-01-15: 400.00 paid 400.00 written off 0.00 (paid, dunning level 0)" in human
    assert "150.00 wechat_pay WX-1 by li.na" in human


def test_ious_pay_refusals_name_the_problem(cli, db):
    start(hotline(cli.app).engine)
    assert "error: a payment of 1000.01 CNY is more than the 1000.00 CNY still owed" in \
        cli.run("ious", "pay", "1", "--installment", "1", "--amount", "1000.01", code=1).stderr
    assert "error: IOU-2026-000001 has no installment 2 (it has 1)" in \
        cli.run("ious", "pay", "1", "--installment", "2", "--amount", "1", code=1).stderr
    assert "error: no IOU IOU-2099-000001" in \
        cli.run("ious", "pay", "IOU-2099-000001", "--installment", "1", "--amount", "1", code=1).stderr
    assert "error: amount 'lots' is not an amount" in \
        cli.run("ious", "pay", "1", "--installment", "1", "--amount", "lots", code=1).stderr
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(IouPayment)) == 0


def test_dunning_list_and_import(cli, db, tmp_path):
    levels = cli.json("dunning", "list")
    assert [(lv["level"], lv["days"], lv["action"]) for lv in levels] == [
        (1, -3, "sms"), (2, 0, "call_task"), (3, 3, "sms"), (4, 7, "call_task"), (5, 15, "email"),
        (6, 30, "supervisor_review"), (7, 45, "write_off_approval")]
    assert all("{amount}" in lv["message_en"] and "{amount}" in lv["message_zh"] for lv in levels)
    assert "write_off_approval" in cli.run("dunning", "list").stdout
    exported = cli.run("dunning", "list", "--csv").stdout
    assert [lv.to_dict() for lv in dunning.parse_csv(exported)] == levels  # the export imports again as it was

    good = tmp_path / "levels.csv"
    good.write_text(LADDER, encoding="utf-8")
    assert cli.json("dunning", "import", str(good)) == {"replaced": 7, "imported": 3}
    assert [lv["days"] for lv in cli.json("dunning", "list")] == [-1, 2, 5]

    bad = tmp_path / "bad.csv"
    bad.write_text("level,days,action,message_en,message_zh\n1,1,sms,a,b\n2,4,fax,a,b\n", encoding="utf-8")
    err = cli.run("dunning", "import", str(bad), code=1).stderr
    assert "error: row 3: action 'fax' is not one of" in err
    assert [lv["days"] for lv in cli.json("dunning", "list")] == [-1, 2, 5]  # nothing changed
    assert "cannot read" in cli.run("dunning", "import", str(tmp_path / "missing.csv"), code=1).stderr
