"""survey results

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 14:30:00

One row per satisfaction survey a callback asks for (written when the survey is sampled,
completed with its outcome and answer when the callback ends); see app/models/survey.py.
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('survey_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.Column('business_key', sa.String(length=40), nullable=False),
    sa.Column('source_ticket', sa.String(length=40), nullable=False),
    sa.Column('process', sa.String(length=100), nullable=False),
    sa.Column('group_name', sa.String(length=100), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('score', sa.SmallInteger(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('resolved', sa.Boolean(), nullable=True),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('agent', sa.String(length=80), nullable=True),
    sa.Column('asked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("outcome IN ('pending', 'answered', 'refused', 'wrong_number', 'unreachable')",
                       name=op.f('ck_survey_result_outcome')),
    sa.CheckConstraint('score IS NULL OR (score >= 1 AND score <= 5)', name=op.f('ck_survey_result_score')),
    sa.CheckConstraint("language IN ('en', 'zh')", name=op.f('ck_survey_result_language')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_survey_result_customer_id_customer'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_result')),
    sa.UniqueConstraint('instance_id', name=op.f('uq_survey_result_instance_id'))
    )
    with op.batch_alter_table('survey_result', schema=None) as batch_op:
        batch_op.create_index('ix_survey_result_answered_at', ['answered_at'], unique=False)
        batch_op.create_index('ix_survey_result_customer_id_asked_at', ['customer_id', 'asked_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('survey_result', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_result_customer_id_asked_at')
        batch_op.drop_index('ix_survey_result_answered_at')

    op.drop_table('survey_result')
