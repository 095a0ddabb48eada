"""customers and their phone numbers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:01:55.658103

process_instance.customer_id (indexed since 0001) links a ticket to its customer but gets
no foreign key here: SQLite can only add one by rebuilding process_instance, and with
foreign keys on (Hotline always turns them on) dropping the old table runs its ON DELETE
CASCADE into instance_event, human_task and the other child tables. Customers are never
deleted by the application (they are kept for the ticket history), so a dangling id is
not a case that arises.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("language IN ('en', 'zh')", name=op.f('ck_customer_language')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer'))
    )
    op.create_table('customer_phone',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_customer_phone_customer_id_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_phone')),
    sa.UniqueConstraint('number', name=op.f('uq_customer_phone_number'))
    )
    with op.batch_alter_table('customer_phone', schema=None) as batch_op:
        batch_op.create_index('ix_customer_phone_customer_id', ['customer_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('customer_phone', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_phone_customer_id')

    op.drop_table('customer_phone')
    op.drop_table('customer')
