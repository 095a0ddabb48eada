"""SQLAlchemy engine and transaction scope: plain SQLAlchemy 2, usable without Flask."""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.errors import DatabaseUnavailable

_MISSING_TABLE = re.compile(r'no such table|relation "[^"]+" does not exist')
_MISSING_COLUMN = re.compile(r'no such column|column "?[\w.]+"? does not exist|has no column named')


def explain(exc: SQLAlchemyError) -> DatabaseUnavailable | None:
    """What a database error means for the person who hit it, when it is about set-up."""
    if not isinstance(exc, (OperationalError, ProgrammingError)):
        return None
    text = str(exc.orig) if getattr(exc, "orig", None) else str(exc)
    if _MISSING_TABLE.search(text):
        return DatabaseUnavailable("the database is not set up; run: flask --app wsgi db upgrade",
                                   reason="not_migrated")
    if _MISSING_COLUMN.search(text):
        return DatabaseUnavailable("the database schema is older than this Hotline; run: flask --app wsgi db upgrade",
                                   reason="not_migrated")
    return DatabaseUnavailable(f"database error: {text.strip().splitlines()[0] if text.strip() else exc}",
                               reason="unavailable")


class Database:
    """One per process and database URL. ``transaction()`` is the unit of work."""

    def __init__(self, url: str, echo: bool = False):
        self.url = url
        self.engine: Engine = _make_engine(url, echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit on success, roll back on any exception: nothing is half-written."""
        session = self._sessions()
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str, echo: bool) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # pysqlite's own transaction handling defers BEGIN; Hotline issues its own.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # IMMEDIATE takes SQLite's single write lock up front: a second writer waits
            # (busy_timeout) instead of failing to upgrade a stale read snapshot.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # connect_timeout: a database host that never answers must not hang a request or a health check.
    engine = create_engine(url, echo=echo, pool_size=10, max_overflow=20, connect_args={"connect_timeout": 5})
    _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


PING_AFTER_IDLE_SECONDS = 5.0


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection before use when it sat idle ``idle_seconds`` or more.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a ``SELECT 1`` round trip (with
    autocommit switched on and off around it) before every engine transaction, 0.15 ms or ~4%
    of a start. A connection handed back moments ago is as good as that ping would say; one
    that sat idle, when a database restart is likely to have gone unnoticed, is pinged, and a
    dead one replaced before anyone uses it. A restart under continuous load is met by the
    first statement instead: that one transaction fails whole, and the pool reconnects.
    """

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _fresh(_dbapi_conn, record):
        record.info["used_at"] = time.monotonic()  # just connected or just used: known good

    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn, record, _proxy):
        used_at = record.info.get("used_at")
        if used_at is not None and time.monotonic() - used_at < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - whatever broke it, the pool connects afresh
            raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc
