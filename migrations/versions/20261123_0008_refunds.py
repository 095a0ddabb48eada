"""refunds

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 14:30:00

Refunds and their approvals (app/models/refund.py). The partial unique index keeps one
open refund (requested or approved) per order reference; SQLite and PostgreSQL both
support the WHERE clause.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_OPEN = "status IN ('requested', 'approved')"


def upgrade() -> None:
    op.create_table('refund',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('business_key', sa.String(length=40), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('source_ticket', sa.String(length=40), nullable=False),
    sa.Column('order_reference', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('method', sa.String(length=40), nullable=False),
    sa.Column('account', sa.String(length=100), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('approval_chain', sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('requested_by', sa.String(length=80), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paid_amount', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('payout_reference', sa.String(length=80), nullable=True),
    sa.Column('payout_note', sa.Text(), nullable=False),
    sa.Column('paid_by', sa.String(length=80), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('requested', 'approved', 'rejected', 'paid')", name=op.f('ck_refund_status')),
    sa.CheckConstraint("amount > 0", name=op.f('ck_refund_amount_positive')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_refund_customer_id_customer'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refund')),
    sa.UniqueConstraint('business_key', name=op.f('uq_refund_business_key'))
    )
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.create_index('ix_refund_status_requested_at', ['status', 'requested_at'], unique=False)
        batch_op.create_index('ix_refund_order_reference', ['order_reference'], unique=False)
        batch_op.create_index('ix_refund_customer_id', ['customer_id'], unique=False)
        batch_op.create_index('uq_refund_open_order_reference', ['order_reference'], unique=True,
                              sqlite_where=sa.text(_OPEN), postgresql_where=sa.text(_OPEN))

    op.create_table('refund_approval',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('refund_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.String(length=20), nullable=False),
    sa.Column('decision', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('decided_by', sa.String(length=80), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("decision IN ('approve', 'reject')", name=op.f('ck_refund_approval_decision')),
    sa.CheckConstraint("level IN ('lead', 'finance', 'manager')", name=op.f('ck_refund_approval_level')),
    sa.ForeignKeyConstraint(['refund_id'], ['refund.id'], name=op.f('fk_refund_approval_refund_id_refund'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refund_approval'))
    )
    with op.batch_alter_table('refund_approval', schema=None) as batch_op:
        batch_op.create_index('ix_refund_approval_refund_id_level', ['refund_id', 'level'], unique=True)
        batch_op.create_index('ix_refund_approval_decided_by_decided_at', ['decided_by', 'decided_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('refund_approval', schema=None) as batch_op:
        batch_op.drop_index('ix_refund_approval_decided_by_decided_at')
        batch_op.drop_index('ix_refund_approval_refund_id_level')
    op.drop_table('refund_approval')
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.drop_index('uq_refund_open_order_reference')
        batch_op.drop_index('ix_refund_customer_id')
        batch_op.drop_index('ix_refund_order_reference')
        batch_op.drop_index('ix_refund_status_requested_at')
    op.drop_table('refund')
