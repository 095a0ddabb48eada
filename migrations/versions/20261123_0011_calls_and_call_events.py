"""calls and call events

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 17:20:00

One row per phone call (Asterisk Linkedid) and one per normalized call event, unique by
event key so a replayed AMI event is not counted twice; see app/models/call.py. The ticket
a call opened (call.instance_id) gets no foreign key, as process_instance.customer_id
(0003): tickets and calls are history that is never deleted.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('call',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('linkedid', sa.String(length=64), nullable=False),
    sa.Column('direction', sa.String(length=10), nullable=False),
    sa.Column('caller', sa.String(length=80), nullable=False),
    sa.Column('caller_number', sa.String(length=32), nullable=True),
    sa.Column('called', sa.String(length=80), nullable=False),
    sa.Column('called_number', sa.String(length=32), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('queue', sa.String(length=80), nullable=True),
    sa.Column('agent', sa.String(length=80), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('wait_seconds', sa.Integer(), nullable=True),
    sa.Column('talk_seconds', sa.Integer(), nullable=True),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.Column('business_key', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("direction IN ('inbound', 'outbound')", name=op.f('ck_call_direction')),
    sa.CheckConstraint("status IN ('ringing', 'in_queue', 'answered', 'ended', 'abandoned', 'missed', 'voicemail')",
                       name=op.f('ck_call_status')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_call_customer_id_customer'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call')),
    sa.UniqueConstraint('linkedid', name=op.f('uq_call_linkedid'))
    )
    with op.batch_alter_table('call', schema=None) as batch_op:
        batch_op.create_index('ix_call_caller_number', ['caller_number'], unique=False)
        batch_op.create_index('ix_call_customer_id_started_at', ['customer_id', 'started_at'], unique=False)
        batch_op.create_index('ix_call_started_at', ['started_at'], unique=False)

    op.create_table('call_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=False),
    sa.Column('event_key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['call.id'], name=op.f('fk_call_event_call_id_call'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_event')),
    sa.UniqueConstraint('event_key', name=op.f('uq_call_event_event_key'))
    )
    with op.batch_alter_table('call_event', schema=None) as batch_op:
        batch_op.create_index('ix_call_event_call_id_at', ['call_id', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('call_event', schema=None) as batch_op:
        batch_op.drop_index('ix_call_event_call_id_at')

    op.drop_table('call_event')
    with op.batch_alter_table('call', schema=None) as batch_op:
        batch_op.drop_index('ix_call_started_at')
        batch_op.drop_index('ix_call_customer_id_started_at')
        batch_op.drop_index('ix_call_caller_number')

    op.drop_table('call')
