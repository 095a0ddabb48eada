"""task escalation: level and overdue flag on human tasks

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 14:30:00

``escalation_level`` (how many levels an SLA breach has taken the task up) and ``overdue``
(an escalation fired on it) for the task.escalate service operation. Server defaults, so the
tasks already open get level 0 and not overdue. The (status, due_at) index serves "active
tasks past their due time", the supervisors' overdue lists.
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalation_level', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('overdue', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index('ix_human_task_status_due_at', ['status', 'due_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.drop_index('ix_human_task_status_due_at')
        batch_op.drop_column('overdue')
        batch_op.drop_column('escalation_level')
