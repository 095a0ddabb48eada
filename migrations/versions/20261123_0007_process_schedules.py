"""process schedules: timer start events with cycles

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 14:30:00

(Filled in by: timer start events work.)
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
