"""What every CLI command shares: --json output, one-line errors, JSON arguments."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from app.container import Hotline
from app.db import explain
from app.errors import HotlineError, InvalidInput


def hotline() -> Hotline:
    return current_app.extensions["hotline"]


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False, indent=2)


def wants_json() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get("hotline.json"))


def json_option(func: Callable) -> Callable:
    def remember(ctx: click.Context, _param, value: bool) -> bool:
        ctx.meta["hotline.json"] = value
        return value

    return click.option("--json", "as_json", is_flag=True, expose_value=False, is_eager=True,
                        callback=remember, help="Machine-readable JSON output.")(func)


def parse_json_object(text: str | None, what: str) -> dict:
    if text is None or text == "":
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object like '{{\"key\": \"value\"}}'")
    return value


def emit(value: Any, human: Callable[[Any], None] | str | None = None) -> None:
    """Print ``value`` as JSON under --json, else the human form."""
    if wants_json():
        click.echo(dumps(value))
    elif callable(human):
        human(value)
    elif human is not None:
        click.echo(human)
    else:
        click.echo(dumps(value))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def table(rows: Iterable[dict], columns: list[tuple[str, str]], empty: str = "(none)") -> None:
    rows = list(rows)
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(r.get(key)) for key, _ in columns] for r in rows]
    widths = [max(len(title), *(len(c[i]) for c in cells)) for i, (_, title) in enumerate(columns)]
    widths = [min(w, 60) for w in widths]
    click.echo("  ".join(title.ljust(w) for (_, title), w in zip(columns, widths, strict=True)).rstrip())
    for c in cells:
        click.echo("  ".join(v[:60].ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())


# SQLite and PostgreSQL wording. Not 'database "x" does not exist': db upgrade cannot fix that.


class HotlineGroup(AppGroup):
    """A command group whose commands fail with one line and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HotlineError as exc:
            _fail(exc.message, exc.to_dict())
        except SQLAlchemyError as exc:
            problem = explain(exc)
            if problem is None:
                raise
            _fail(problem.message, problem.to_dict())


def _fail(message: str, payload: dict) -> None:
    if wants_json():
        click.echo(dumps({**payload, "message": payload.get("message", message)}))
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def moment(value: str | None, option: str) -> datetime | None:
    """``--since 2026-03-01`` (midnight) or a date and time; without an offset in the hotline's time zone."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{option}: '{value}' is not a date like 2026-03-01 or 2026-03-01T08:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(hotline().settings.timezone))


def read_text_file(file: str) -> str:
    """A file staff exported (a CSV from a spreadsheet): UTF-8 with or without its mark, or a clear error."""
    try:
        return Path(file).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"cannot read {file}: not UTF-8 text (save it as \"CSV UTF-8\")") from exc
