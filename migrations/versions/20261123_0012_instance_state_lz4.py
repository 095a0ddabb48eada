"""instance state compressed with lz4 on PostgreSQL

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 17:40:00

``process_instance.state`` is the serialized workflow, written on every engine transaction;
a ticket that ran 1,000 steps stores ~750 KiB of JSON. PostgreSQL compresses such values
with pglz by default: on this data lz4 stores the same size but writes 4-7x and reads ~2x
faster (bench/RESULTS.md). Only new values are written with lz4; old ones stay readable.
A server built without lz4 keeps pglz. SQLite has no such setting.
"""
from alembic import op
from sqlalchemy import text

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def _has_lz4(bind) -> bool:
    values = bind.execute(text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")).scalar()
    return bool(values) and "lz4" in values


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _has_lz4(bind):
        op.execute("ALTER TABLE process_instance ALTER COLUMN state SET COMPRESSION lz4")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _has_lz4(bind):
        op.execute("ALTER TABLE process_instance ALTER COLUMN state SET COMPRESSION pglz")
