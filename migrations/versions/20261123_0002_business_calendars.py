"""business calendars: working hours, shifts, holidays, extra working days

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:44:10.514350

No rows: the default calendar is created by the application on first use
(app.services.calendar_store.ensure_default), which is its one definition.
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('calendar',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar')),
    sa.UniqueConstraint('name', name=op.f('uq_calendar_name'))
    )
    with op.batch_alter_table('calendar', schema=None) as batch_op:
        batch_op.create_index('uq_calendar_default', ['is_default'], unique=True, sqlite_where=sa.text('is_default'), postgresql_where=sa.text('is_default'))

    op.create_table('calendar_day',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('calendar_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('working', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['calendar_id'], ['calendar.id'], name=op.f('fk_calendar_day_calendar_id_calendar'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_day')),
    sa.UniqueConstraint('calendar_id', 'day', name=op.f('uq_calendar_day_calendar_id_day'))
    )
    op.create_table('calendar_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('calendar_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start_minute', sa.Integer(), nullable=False),
    sa.Column('end_minute', sa.Integer(), nullable=False),
    sa.Column('shift', sa.String(length=80), nullable=True),
    sa.CheckConstraint('start_minute >= 0 AND start_minute < end_minute AND end_minute <= 1440', name=op.f('ck_calendar_hours_interval')),
    sa.CheckConstraint('weekday >= 0 AND weekday <= 6', name=op.f('ck_calendar_hours_weekday')),
    sa.ForeignKeyConstraint(['calendar_id'], ['calendar.id'], name=op.f('fk_calendar_hours_calendar_id_calendar'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_hours'))
    )
    with op.batch_alter_table('calendar_hours', schema=None) as batch_op:
        batch_op.create_index('ix_calendar_hours_calendar_id', ['calendar_id'], unique=False)

    op.create_table('calendar_day_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day_id', sa.Integer(), nullable=False),
    sa.Column('start_minute', sa.Integer(), nullable=False),
    sa.Column('end_minute', sa.Integer(), nullable=False),
    sa.CheckConstraint('start_minute >= 0 AND start_minute < end_minute AND end_minute <= 1440', name=op.f('ck_calendar_day_hours_interval')),
    sa.ForeignKeyConstraint(['day_id'], ['calendar_day.id'], name=op.f('fk_calendar_day_hours_day_id_calendar_day'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_day_hours'))
    )
    with op.batch_alter_table('calendar_day_hours', schema=None) as batch_op:
        batch_op.create_index('ix_calendar_day_hours_day_id', ['day_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('calendar_day_hours', schema=None) as batch_op:
        batch_op.drop_index('ix_calendar_day_hours_day_id')

    op.drop_table('calendar_day_hours')
    with op.batch_alter_table('calendar_hours', schema=None) as batch_op:
        batch_op.drop_index('ix_calendar_hours_calendar_id')

    op.drop_table('calendar_hours')
    op.drop_table('calendar_day')
    with op.batch_alter_table('calendar', schema=None) as batch_op:
        batch_op.drop_index('uq_calendar_default', sqlite_where=sa.text('is_default'), postgresql_where=sa.text('is_default'))

    op.drop_table('calendar')
