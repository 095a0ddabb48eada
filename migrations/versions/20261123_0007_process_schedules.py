"""process schedules: timer start events with cycles

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 14:30:00
"""
from alembic import op
import sqlalchemy as sa



revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'process_schedule',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('element_id', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('expression', sa.Text(), nullable=False),
        sa.Column('timer', sa.String(length=200), nullable=False),
        sa.Column('period', sa.String(length=60), nullable=True),
        sa.Column('remaining', sa.Integer(), nullable=True),
        sa.Column('next_due_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_instance_id', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['process_model.id'],
                                name=op.f('fk_process_schedule_model_id_process_model'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['version_id'], ['process_version.id'],
                                name=op.f('fk_process_schedule_version_id_process_version'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_process_schedule')),
        sa.UniqueConstraint('model_id', 'element_id', name=op.f('uq_process_schedule_model_id_element_id')),
    )
    with op.batch_alter_table('process_schedule', schema=None) as batch_op:
        batch_op.create_index('ix_process_schedule_next_due_at', ['next_due_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('process_schedule', schema=None) as batch_op:
        batch_op.drop_index('ix_process_schedule_next_due_at')

    op.drop_table('process_schedule')
