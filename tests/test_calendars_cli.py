"""`flask --app wsgi calendars list|show|import-holidays`, in-process, on SQLite and PostgreSQL."""
from __future__ import annotations

from pathlib import Path

import pytest
from support import settings_for
from test_cli import Cli

from app import create_app, hotline

CALENDARS = Path(__file__).resolve().parent / "data" / "calendars"
NATIONAL_DAY = str(CALENDARS / "national_day_2026.csv")
OFFICE_WEEK = {"Monday": "09:00-12:00, 13:00-18:00", "Tuesday": "09:00-12:00, 13:00-18:00",
               "Wednesday": "09:00-12:00, 13:00-18:00", "Thursday": "09:00-12:00, 13:00-18:00",
               "Friday": "09:00-12:00, 13:00-18:00", "Saturday": "-", "Sunday": "-"}


@pytest.fixture
def cli(db, tmp_path, monkeypatch):
    cli = Cli(create_app(settings_for(tmp_path, monkeypatch, database_url=db.url)))
    yield cli
    hotline(cli.app).close()


def test_a_fresh_database_has_the_default_calendar(cli):
    assert cli.json("calendars", "list") == [{
        "name": "default", "title": "Office hours", "time_zone": "Asia/Shanghai", "default": True,
        "week": OFFICE_WEEK, "shifts": [], "holidays": 0, "working_days": 0}]
    lines = cli.run("calendars", "list").stdout.splitlines()
    assert lines[0].split() == ["NAME", "DEFAULT", "TIME", "ZONE", "MONDAY", "SATURDAY", "HOLIDAYS", "WORKING",
                                "DAYS"]
    assert lines[1].split() == ["default", "yes", "Asia/Shanghai", "09:00-12:00,", "13:00-18:00", "-", "0", "0"]


def test_import_holidays_and_make_up_days(cli):
    assert cli.json("calendars", "import-holidays", NATIONAL_DAY) == {
        "calendar": "default", "imported": 9, "holidays": 7, "working_days": 2, "replaced": 0}

    shown = cli.json("calendars", "show", "default")
    assert [d["date"] for d in shown["holidays"]] == [f"2026-10-0{i}" for i in range(1, 8)]
    assert {d["name"] for d in shown["holidays"]} == {"国庆节"}
    assert shown["working_days"] == [  # a make-up day works the calendar's usual hours
        {"date": "2026-09-27", "name": "国庆节调休", "hours": ["09:00-12:00", "13:00-18:00"]},
        {"date": "2026-10-10", "name": "国庆节调休", "hours": ["09:00-12:00", "13:00-18:00"]}]
    text = cli.run("calendars", "show").stdout
    assert text.startswith("default (default): Office hours, Asia/Shanghai\n")
    assert "  2026-10-01  holiday       国庆节\n" in text
    assert "  2026-10-10  working day   国庆节调休 (09:00-12:00, 13:00-18:00)\n" in text

    again = cli.run("calendars", "import-holidays", NATIONAL_DAY)  # the same dates replace, never duplicate
    assert again.stdout == "calendar default: imported 7 holiday(s) and 2 working day(s) (9 replaced)\n"
    assert cli.json("calendars", "list")[0]["holidays"] == 7


def test_the_engine_in_this_process_sees_an_import_at_once(cli):
    h = hotline(cli.app)
    assert h.engine.calendars.get().holidays == {}  # loaded now; kept for the TTL
    cli.run("calendars", "import-holidays", NATIONAL_DAY)
    with h.db.transaction() as s:
        h.engine.calendars.refresh(s)  # what every engine transaction does first
    assert len(h.engine.calendars.get().holidays) == 7


def test_bad_rows_are_named_by_line_and_nothing_is_imported(cli):
    bad = str(CALENDARS / "bad_rows.csv")
    assert cli.error("calendars", "import-holidays", bad) == (
        "error: bad_rows.csv: line 3: '2026-10-32' is not a date like 2026-10-01; line 4: 2026-10-03 has no name; "
        "line 5: 2026-10-01 is already on line 2; line 6: working is 'yes please' (1: a make-up working day, "
        "0: a holiday); nothing imported")
    failed = cli.json("calendars", "import-holidays", bad, code=1)
    assert (failed["error"], len(failed["problems"])) == ("invalid_input", 4)
    assert cli.json("calendars", "show")["holidays"] == []


def test_calendar_and_file_errors(cli, tmp_path):
    assert cli.error("calendars", "import-holidays", NATIONAL_DAY, "--calendar", "night-team") == \
        "error: no business calendar 'night-team' (known: default)"
    assert cli.error("calendars", "show", "night-team") == "error: no business calendar 'night-team' (known: default)"
    missing = tmp_path / "nope.csv"
    assert cli.error("calendars", "import-holidays", str(missing)) == \
        f"error: cannot read {missing}: No such file or directory"
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("2026-10-01,Fête\n".encode("latin-1"))
    assert cli.error("calendars", "import-holidays", str(latin1)) == \
        f'error: cannot read {latin1}: not UTF-8 text (save it as "CSV UTF-8")'
