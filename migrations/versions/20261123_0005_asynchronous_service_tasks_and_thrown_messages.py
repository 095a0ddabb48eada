"""asynchronous service tasks and thrown messages

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:30:00

(Filled in by: async service tasks work.)
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
