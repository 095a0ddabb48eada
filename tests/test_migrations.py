"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

Each backend starts from an EMPTY database (not the shared test template), so a revision
that only works on top of tables some other code created is caught here.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from support import scratch_pg_database

from app.db import Database
from app.migrate import alembic_config, downgrade, upgrade
from app.models import Base

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ROOT / "migrations" / "versions"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db(request, tmp_path):
    """A database with no tables at all: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
        yield db
        db.dispose()
        return
    with scratch_pg_database("migrations") as url:
        db = Database(url)
        yield db
        db.dispose()


def _tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names())


def _differences(db: Database) -> list:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def _revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_upgrade_empty_database_matches_models(empty_db):
    assert _tables(empty_db) == set()
    upgrade(empty_db)

    assert _revision(empty_db) == _head()
    assert _tables(empty_db) == set(Base.metadata.tables) | {"alembic_version"}
    differences = _differences(empty_db)
    assert differences == [], "models and migrations disagree; write a revision for:\n" + \
        "\n".join(map(repr, differences))


def test_downgrade_to_base_and_upgrade_again(empty_db):
    upgrade(empty_db)
    downgrade(empty_db, "base")

    assert _tables(empty_db) == {"alembic_version"}
    assert _revision(empty_db) is None

    upgrade(empty_db)
    assert _revision(empty_db) == _head()
    assert _differences(empty_db) == []


@pytest.mark.postgres
def test_instance_state_is_compressed_with_lz4_on_postgresql():
    """Writing a long ticket's ~750 KiB state with pglz costs 4-7x what lz4 does (migration 0012)."""
    with scratch_pg_database("migrations_lz4") as url:
        db = Database(url)
        try:
            upgrade(db)
            with db.engine.connect() as conn:
                available = conn.execute(text(
                    "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")).scalar()
                method = conn.execute(text(
                    "SELECT attcompression FROM pg_attribute WHERE attrelid = 'process_instance'::regclass "
                    "AND attname = 'state'")).scalar()
        finally:
            db.dispose()
    assert method == ("l" if "lz4" in available else "")


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(Database("sqlite://")))


def _head() -> str:
    return _script().get_current_head()


def test_exactly_one_head():
    heads = _script().get_heads()
    assert len(heads) == 1, f"migrations have {len(heads)} heads {heads}; merge them (alembic merge)"


def test_revisions_are_named_and_self_contained():
    """Each revision says what it does, has a real downgrade, and never imports the app."""
    revisions = list(_script().walk_revisions())
    assert revisions, "no migrations found"
    problems = []
    for rev in revisions:
        path = Path(rev.path)
        if not (rev.doc or "").strip():
            problems.append(f"{path.name}: no message")
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(n == "app" or n.startswith("app.") for n in names):
                problems.append(f"{path.name}:{node.lineno}: imports the application ({', '.join(names)})")
        downgrade_fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "downgrade"), None)
        if downgrade_fn is None or all(isinstance(s, (ast.Pass, ast.Expr)) for s in downgrade_fn.body):
            problems.append(f"{path.name}: downgrade() does nothing")
    assert not problems, "\n".join(problems)
