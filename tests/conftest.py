"""Shared fixtures: a fresh database per test on SQLite and (when reachable) PostgreSQL.

Every test that takes ``db`` or ``engine`` runs once per backend. PostgreSQL is the server
at ``HOTLINE_TEST_PG_SERVER`` (default 127.0.0.1:5432), in a database of this session's own;
when it is unreachable those runs are skipped locally but fail when
``HOTLINE_REQUIRE_SERVICES`` is set, as ``.ci/run`` does, so CI cannot pass without it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from support import scratch_pg_database, unavailable

from app.db import Database
from app.engine import ProcessEngine, clock
from app.migrate import upgrade
from app.models import Base
from app.services import identity

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "hotline.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def pg_url():
    """A migrated PostgreSQL database for this test session (see support.scratch_pg_database)."""
    with scratch_pg_database("test") as url:
        try:
            db = Database(url)
            upgrade(db)
            db.dispose()
        except Exception as exc:  # noqa: BLE001
            unavailable("PostgreSQL", f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        yield url


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


@pytest.fixture
def checked_walks(monkeypatch):
    """Every shortcut ``app.engine.spiff_walks`` takes is checked against SpiffWorkflow's own
    walk (same tasks, same order); yields how often each answered."""
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.util.task import TaskIterator, TaskState

    from app.engine import spiff_walks

    counts = {"short": 0, "walked": 0}
    fast_get, fast_update = spiff_walks._get_tasks, spiff_walks._update_waiting_tasks
    spiff_get, spiff_update = BpmnWorkflow.get_tasks, BpmnWorkflow.update_waiting_tasks
    fell_back = []

    def get_tasks(workflow, first_task=None, **kwargs):
        fell_back.clear()
        got = fast_get(workflow, first_task, **kwargs)
        counts["walked" if fell_back else "short"] += 1
        want = spiff_get(workflow, first_task, **kwargs)
        assert [t.id for t in got] == [t.id for t in want], (kwargs, got, want)
        return got

    def update_waiting_tasks(workflow):
        fell_back.clear()
        if not any(t._state & TaskState.WAITING for t in workflow.tasks.values()):
            assert not list(TaskIterator(workflow.task_tree, state=TaskState.WAITING))
        fast_update(workflow)
        counts["walked" if fell_back else "short"] += 1

    def spiff_walk(original):
        def walk(*args, **kwargs):
            fell_back.append(True)
            return original(*args, **kwargs)
        return walk

    monkeypatch.setattr(spiff_walks, "_get_tasks", get_tasks)
    monkeypatch.setattr(spiff_walks, "_update_waiting_tasks", update_waiting_tasks)
    monkeypatch.setattr(BpmnWorkflow, "get_tasks", spiff_walk(spiff_get))
    monkeypatch.setattr(BpmnWorkflow, "update_waiting_tasks", spiff_walk(spiff_update))
    return counts
