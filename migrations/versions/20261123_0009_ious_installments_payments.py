"""IOUs, installments, payments and dunning levels

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 14:30:00

(Filled in by: IOU collection work.)
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
