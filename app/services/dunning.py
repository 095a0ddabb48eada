"""The dunning ladder as data: which level comes next for an installment, and when.

Levels live in the ``dunning_level`` table (migration 0009 puts in the default set; an
administrator replaces the whole set with ``flask --app wsgi dunning import FILE.csv``).
Each level has a number, days relative to the installment's due date (negative: before
it), an action and a message in English and Chinese with placeholders. The IOU
collection process asks ``next_step`` before every wait, so a changed table reaches
installments already being dunned at their next level.

Levels are ordered by their days; an installment remembers the days of the last level
performed, and its next level is the first one further out. A level falls due at
``DUNNING_HOUR`` (10:00) in the hotline's time zone (``HOTLINE_TIMEZONE``) on its day.
"""
from __future__ import annotations

import csv
import io
import os
import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import utcnow
from app.models.iou import DUNNING_ACTIONS, DunningLevel, IouInstallment

DUNNING_HOUR = time(10, 0)
PLACEHOLDERS = ("amount", "currency", "due_date", "business_key", "installment", "customer_name", "days_overdue")
CSV_COLUMNS = ("level", "days", "action", "message_en", "message_zh")
FINAL_ACTION = "write_off_approval"
MAX_MESSAGE = 1000


@dataclass(frozen=True)
class Level:
    level: int
    days: int
    action: str
    message_en: str
    message_zh: str

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "days": self.days, "action": self.action, "message_en": self.message_en,
                "message_zh": self.message_zh}


def hotline_timezone() -> ZoneInfo:
    name = os.environ.get("HOTLINE_TIMEZONE", "Asia/Shanghai")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"HOTLINE_TIMEZONE={name!r} is not a time zone (e.g. Asia/Shanghai)") from exc


def due_moment(due_date: date, days: int) -> datetime:
    """When a level ``days`` from ``due_date`` falls due: 10:00 that day, hotline time, as UTC."""
    day = due_date + timedelta(days=days)
    return datetime.combine(day, DUNNING_HOUR, hotline_timezone()).astimezone(UTC)


def levels(session: Session) -> list[Level]:
    rows = session.scalars(select(DunningLevel).order_by(DunningLevel.days)).all()
    return [Level(r.level, r.days, r.action, r.message_en, r.message_zh) for r in rows]


def next_level(session: Session, installment: IouInstallment, at: datetime) -> tuple[Level, datetime] | None:
    """The installment's next level and when it falls due; None when it is settled.

    After the last level (a write-off approval) was rejected, the write-off is asked again
    at ``review_at``. An installment past every level of a table that was shortened meanwhile
    gets the table's last level at once (``at``: now).
    """
    if installment.status != "open":
        return None
    ladder = levels(session)
    if not ladder:
        raise InvalidInput("there are no dunning levels: import some with 'flask --app wsgi dunning import FILE.csv'")
    done = installment.dunning_days
    for level in ladder:
        if done is None or level.days > done:
            return level, due_moment(installment.due_date, level.days)
    last = ladder[-1]
    if installment.review_at is not None:
        return last, installment.review_at
    return last, max(due_moment(installment.due_date, last.days), at)


def render(template: str, values: dict[str, Any]) -> str:
    return template.format_map({k: values.get(k, "") for k in PLACEHOLDERS})


# --- the table as CSV ---------------------------------------------------------------------


def parse_csv(text: str) -> list[Level]:
    """Levels from CSV text with the header ``level,days,action,message_en,message_zh``.

    Every problem is reported with its row (the header is row 1), all at once.
    """
    reader = csv.reader(io.StringIO(text))
    rows = [r for r in reader]
    if not rows or [c.strip().lower() for c in rows[0]] != list(CSV_COLUMNS):
        raise InvalidInput(f"the first row must be the header {','.join(CSV_COLUMNS)}")
    problems: list[str] = []
    parsed: list[tuple[int, Level]] = []
    for number, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        level, found = _parse_row(row)
        problems += [f"row {number}: {p}" for p in found]
        if level is not None:
            parsed.append((number, level))
    problems += _ladder_problems(parsed, bool(problems))
    if problems:
        raise InvalidInput("; ".join(problems), problems=problems)
    return sorted((lv for _, lv in parsed), key=lambda lv: lv.days)


def _parse_row(row: list[str]) -> tuple[Level | None, list[str]]:
    if len(row) != len(CSV_COLUMNS):
        return None, [f"has {len(row)} columns, expected {len(CSV_COLUMNS)} ({','.join(CSV_COLUMNS)}); "
                      "quote messages that contain commas"]
    raw = dict(zip(CSV_COLUMNS, (c.strip() for c in row), strict=True))
    problems = []
    number = _integer(raw["level"], "level", problems)
    if number is not None and number < 1:
        problems.append(f"level must be 1 or more, got {number}")
    days = _integer(raw["days"], "days", problems)
    if raw["action"] not in DUNNING_ACTIONS:
        problems.append(f"action '{raw['action']}' is not one of: {', '.join(DUNNING_ACTIONS)}")
    for lang in ("en", "zh"):
        problems += _template_problems(raw[f"message_{lang}"], f"message_{lang}")
    if problems:
        return None, problems
    return Level(number, days, raw["action"], raw["message_en"], raw["message_zh"]), []


def _integer(text: str, name: str, problems: list[str]) -> int | None:
    try:
        return int(text)
    except ValueError:
        problems.append(f"{name} must be a whole number, got '{text}'")
        return None


def _template_problems(template: str, name: str) -> list[str]:
    if not template:
        return [f"{name} is empty: every level needs its message in English and Chinese"]
    if len(template) > MAX_MESSAGE:
        return [f"{name} is longer than {MAX_MESSAGE} characters"]
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return [f"{name} is not a valid template ({exc}); write a brace as {{{{ or }}}}"]
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        return [f"{name} uses unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
                f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"]
    return []


def _ladder_problems(parsed: list[tuple[int, Level]], rows_bad: bool) -> list[str]:
    problems = []
    seen_levels: dict[int, int] = {}
    seen_days: dict[int, int] = {}
    for row, level in parsed:
        if level.level in seen_levels:
            problems.append(f"row {row}: level {level.level} is already on row {seen_levels[level.level]}")
        if level.days in seen_days:
            problems.append(f"row {row}: days {level.days} is already used on row {seen_days[level.days]}")
        seen_levels.setdefault(level.level, row)
        seen_days.setdefault(level.days, row)
    if problems or rows_bad:
        return problems
    if not parsed:
        return ["the file has no levels: at least one (the last being write_off_approval) is needed"]
    by_level = sorted(parsed, key=lambda p: p[1].level)
    for (row_a, a), (row_b, b) in zip(by_level, by_level[1:], strict=False):
        if b.days <= a.days:
            problems.append(f"row {row_b}: level {b.level} comes after level {a.level} (row {row_a}) "
                            f"but its days ({b.days}) are not later than {a.days}")
    row, last = by_level[-1]
    if last.action != FINAL_ACTION:
        problems.append(f"row {row}: the last level ({last.level}) must be {FINAL_ACTION}, got {last.action}")
    return problems


def replace_levels(session: Session, new: list[Level]) -> dict[str, int]:
    """Put ``new`` in place of every level, in the caller's transaction (all or nothing)."""
    old = len(levels(session))
    session.execute(delete(DunningLevel))
    session.flush()
    now = utcnow()
    session.add_all(DunningLevel(level=lv.level, days=lv.days, action=lv.action, message_en=lv.message_en,
                                 message_zh=lv.message_zh, updated_at=now) for lv in new)
    session.flush()
    return {"replaced": old, "imported": len(new)}


def to_csv(ladder: list[Level]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for lv in ladder:
        writer.writerow([lv.level, lv.days, lv.action, lv.message_en, lv.message_zh])
    return out.getvalue()
