"""notification outbox and in-app notifications

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 14:30:00

One table for every notification (SMS, e-mail, in-app): rows are written in the process
step's transaction and sent afterwards (app/services/outbox.py). Two indexes serve the two
hot reads: the sweep (status, next_attempt_at) and a user's inbox (username, read_at).
instance_id has no foreign key on purpose: what a customer was told outlives the ticket.
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('link', sa.String(length=500), nullable=True),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claim_token', sa.String(length=32), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('username', sa.String(length=80), nullable=True),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("channel IN ('sms', 'email', 'in_app')", name=op.f('ck_notification_channel')),
    sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed')", name=op.f('ck_notification_status')),
    sa.CheckConstraint("channel != 'in_app' OR username IS NOT NULL", name=op.f('ck_notification_in_app_username')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification'))
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index('ix_notification_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_notification_username_read_at', ['username', 'read_at'], unique=False)
        batch_op.create_index('ix_notification_instance_id', ['instance_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_instance_id')
        batch_op.drop_index('ix_notification_username_read_at')
        batch_op.drop_index('ix_notification_status_next_attempt_at')

    op.drop_table('notification')
