"""What the CLI, web and migration tests share: real servers, and settings pointed at a temp dir.

PostgreSQL and Redis are skipped locally when down and a failure in CI. Their addresses follow
``.ci/run``: ``HOTLINE_TEST_PG_SERVER`` (no database name) and
``HOTLINE_TEST_REDIS_URL``; ``HOTLINE_REQUIRE_SERVICES=1`` turns "unavailable" into a failure.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app.config import Settings

REQUIRE_SERVICES = os.environ.get("HOTLINE_REQUIRE_SERVICES") == "1"
PG_SERVER = os.environ.get("HOTLINE_TEST_PG_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432").rstrip("/")
CLI_LIBRARY = Path(__file__).resolve().parent / "data" / "cli" / "library"
REDIS_URL = os.environ.get("HOTLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def unavailable(what: str, why: str):
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (HOTLINE_REQUIRE_SERVICES=1) but unavailable: {why}")
    pytest.skip(f"{what} unavailable: {why}")


def _pg_admin(sql: str) -> None:
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


@contextmanager
def scratch_pg_database(purpose: str) -> Iterator[str]:
    """An empty database of its own (named per process, so parallel runs never meet), dropped after."""
    name = f"hotline_{purpose}_{os.getpid()}"
    try:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _pg_admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means "unavailable"
        unavailable("PostgreSQL", f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def chromium_path() -> str:
    """Debian's Chromium (``apt-get install chromium``), which Playwright drives; its own download is not used."""
    import shutil

    path = os.environ.get("HOTLINE_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        unavailable("Chromium", "no 'chromium' on PATH (apt-get install chromium)")
    return path


def redis_server_url() -> str:
    """The test Redis server's URL, once it answered a ping."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        unavailable("Redis", f"{REDIS_URL}: {type(exc).__name__}: {exc}")
    finally:
        client.close()
    return REDIS_URL


def settings_for(tmp_path: Path, monkeypatch, **changes) -> Settings:
    """``Settings.from_env()`` as a user would get them, with every path and URL under ``tmp_path``.

    Nothing from the developer's own environment leaks in (their DATABASE_URL, REDIS_URL).
    """
    monkeypatch.setenv("HOTLINE_INSTANCE_DIR", str(tmp_path / "instance"))
    for name in ("DATABASE_URL", "REDIS_URL", "HOTLINE_ENV", "SECRET_KEY", "HOTLINE_BPMN_DIR", "HOTLINE_FORMS_DIR"):
        monkeypatch.delenv(name, raising=False)
    forms = tmp_path / "forms"
    forms.mkdir(exist_ok=True)
    defaults = {"database_url": f"sqlite:///{tmp_path / 'hotline.db'}", "bpmn_dir": CLI_LIBRARY, "forms_dir": forms}
    return Settings.from_env().but(**{**defaults, **changes})


def record_sample_call(s, linkedid: str, caller: str, at, answered: bool, agent: str | None = None) -> None:
    """A call as the telephony worker will record it: in, queued 5 s later, answered after 35 s
    (or not: abandoned in the queue), hung up after 95 s."""
    from datetime import timedelta

    from app.models.call import CallKind
    from app.services import calls

    def event(kind, seconds, **fields):
        return {"linkedid": linkedid, "key": f"{linkedid}:{kind}", "kind": kind,
                "at": at + timedelta(seconds=seconds), **fields}

    calls.record_call_event(s, event(CallKind.INBOUND, 0, caller=caller, called="12345"))
    calls.record_call_event(s, event(CallKind.QUEUED, 5, queue="water"))
    if answered:
        calls.record_call_event(s, event(CallKind.ANSWERED, 35, agent=agent))
    calls.record_call_event(s, event(CallKind.HANGUP, 95))
