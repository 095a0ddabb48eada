"""Shared fixtures: a fresh database per test on SQLite and (when reachable) PostgreSQL.

Every test that takes ``db`` or ``engine`` runs once per backend. PostgreSQL comes from
``HOTLINE_TEST_PG_URL`` (default: a ``hotline_test`` database on 127.0.0.1:5432); when
it is unreachable those runs are skipped locally but fail when ``HOTLINE_REQUIRE_SERVICES``
is set, as ``.ci/run`` does, so CI cannot pass without having tested against it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app.db import Database
from app.engine import ProcessEngine, clock
from app.migrate import upgrade
from app.models import Base
from app.services import identity

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
REQUIRE_SERVICES = os.environ.get("HOTLINE_REQUIRE_SERVICES") == "1"
PG_SERVER = os.environ.get("HOTLINE_TEST_PG_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432")
# One database per test session, so parallel runs on one machine never share tables.
PG_URL = f"{PG_SERVER}/hotline_test_{os.getpid()}"


def unavailable(what: str, why: str):
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (HOTLINE_REQUIRE_SERVICES=1) but unavailable: {why}")
    pytest.skip(f"{what} unavailable: {why}")


def _pg_admin(sql: str) -> None:
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "hotline.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def pg_url():
    name = PG_URL.rsplit("/", 1)[1]
    try:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _pg_admin(f'CREATE DATABASE "{name}"')
        db = Database(PG_URL)
        upgrade(db)
        db.dispose()
    except Exception as exc:  # noqa: BLE001
        unavailable("PostgreSQL", f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    yield PG_URL
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate_pg(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def make_db(backend: str, request, tmp_path) -> Database:
    if backend == "sqlite":
        path = tmp_path / "hotline.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return Database(f"sqlite:///{path}")
    db = Database(request.getfixturevalue("pg_url"))
    _truncate_pg(db)
    return db


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    database = make_db(request.param, request, tmp_path)
    with database.transaction() as s:
        identity.ensure_admin(s)
    yield database
    database.dispose()


@pytest.fixture
def pg_db(request, tmp_path):
    database = make_db("postgresql", request, tmp_path)
    with database.transaction() as s:
        identity.ensure_admin(s)
    yield database
    database.dispose()


@pytest.fixture
def forms_dir(tmp_path) -> Path:
    path = tmp_path / "forms"
    path.mkdir()
    return path


@pytest.fixture
def engine(db, forms_dir) -> ProcessEngine:
    return ProcessEngine(db, forms_dir)


@pytest.fixture(autouse=True)
def _clock():
    clock.reset()
    yield
    clock.reset()


def bpmn_path(name: str) -> Path:
    return DATA / "bpmn" / name


@pytest.fixture
def deploy(engine):
    """deploy("gateway.bpmn", ...) deploys files from tests/data/bpmn."""

    def _deploy(*names: str):
        results, _ = engine.deploy([bpmn_path(n) for n in names])
        return results

    return _deploy
