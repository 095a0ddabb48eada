"""asynchronous service tasks and thrown messages

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:30:00

service_job: one row per asynchronous service task an instance waits at (attempts,
backoff, a worker's lease, the result once the operation succeeded). thrown_message: the
outbox of messages a process threw that nothing in its own workflow caught, delivered
once by a job on the engine queue.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _json():
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table('service_job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('spiff_task_id', sa.String(length=36), nullable=False),
    sa.Column('element_id', sa.String(length=200), nullable=False),
    sa.Column('operation', sa.String(length=200), nullable=False),
    sa.Column('params', _json(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('backoff_seconds', sa.Float(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('lease_owner', sa.String(length=80), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', _json(), nullable=True),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], name=op.f('fk_service_job_incident_id_incident'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instance.id'],
                            name=op.f('fk_service_job_instance_id_process_instance'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_job')),
    sa.UniqueConstraint('spiff_task_id', name=op.f('uq_service_job_spiff_task_id'))
    )
    with op.batch_alter_table('service_job', schema=None) as batch_op:
        batch_op.create_index('ix_service_job_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_service_job_instance_id', ['instance_id'], unique=False)

    op.create_table('thrown_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.Column('sender_business_key', sa.String(length=80), nullable=False),
    sa.Column('element_id', sa.String(length=200), nullable=True),
    sa.Column('message_name', sa.String(length=200), nullable=False),
    sa.Column('correlation', _json(), nullable=False),
    sa.Column('payload', _json(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', _json(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instance.id'],
                            name=op.f('fk_thrown_message_instance_id_process_instance'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_thrown_message'))
    )
    with op.batch_alter_table('thrown_message', schema=None) as batch_op:
        batch_op.create_index('ix_thrown_message_delivered_at_id', ['delivered_at', 'id'], unique=False)
        batch_op.create_index('ix_thrown_message_instance_id', ['instance_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('thrown_message', schema=None) as batch_op:
        batch_op.drop_index('ix_thrown_message_instance_id')
        batch_op.drop_index('ix_thrown_message_delivered_at_id')
    op.drop_table('thrown_message')

    with op.batch_alter_table('service_job', schema=None) as batch_op:
        batch_op.drop_index('ix_service_job_instance_id')
        batch_op.drop_index('ix_service_job_status_next_attempt_at')
    op.drop_table('service_job')
