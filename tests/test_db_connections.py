"""Pooled PostgreSQL connections that died (a database restart, a killed backend).

Hotline pings a pooled connection only when it sat idle (``app.db.PING_AFTER_IDLE_SECONDS``)
instead of before every transaction: a dead idle connection is replaced before anyone uses
it; one that died within the idle window fails the one transaction that meets it, and the
pool reconnects for the next.
"""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from app import db as app_db
from app.db import Database

pytestmark = pytest.mark.postgres


def _backend_pid(db: Database) -> int:
    with db.transaction() as s:
        return s.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _kill(url: str, pid: int) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


def test_a_dead_connection_that_sat_idle_is_replaced_before_use(pg_url, monkeypatch):
    monkeypatch.setattr(app_db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout counts as idle
    db = Database(pg_url)
    try:
        first = _backend_pid(db)
        _kill(pg_url, first)
        assert _backend_pid(db) != first  # no error: the ping found it dead, the pool connected afresh
    finally:
        db.dispose()


def test_a_connection_used_moments_ago_is_reused_without_a_ping_and_its_death_fails_one_transaction(
        pg_url, monkeypatch):
    monkeypatch.setattr(app_db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    db = Database(pg_url)
    pings = []
    ping = db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda conn: pings.append(conn) or ping(conn))
    try:
        first = _backend_pid(db)
        assert _backend_pid(db) == first and pings == []  # the same connection, reused without a ping
        _kill(pg_url, first)
        with pytest.raises(OperationalError):
            _backend_pid(db)  # the transaction that meets the dead connection fails, nothing else
        assert _backend_pid(db) != first  # the next one has a new connection
    finally:
        db.dispose()
