"""SQLAlchemy engine and transaction scope: plain SQLAlchemy 2, usable without Flask."""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError
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
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         connect_args={"connect_timeout": 5})
