"""IOUs, installments, payments and dunning levels

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 14:30:00

The dunning ladder is data: this revision fills ``dunning_level`` with the default set
(reminder three days before the due date ... write-off approval 45 days after it);
administrators replace it with ``flask --app wsgi dunning import FILE.csv``.
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=12, scale=2)

# (level, days relative to the due date, action, English message, Chinese message)
DEFAULT_LEVELS = [
    (1, -3, "sms",
     "Reminder: {amount} {currency} of {business_key} (installment {installment}) is due on {due_date}.",
     "温馨提示：您的欠款 {business_key}（第{installment}期）{amount} {currency} 将于 {due_date} 到期。"),
    (2, 0, "call_task",
     "Due today: call the customer and collect {amount} {currency} ({business_key}, installment {installment}).",
     "今日到期：请致电客户收取 {amount} {currency}（{business_key} 第{installment}期）。"),
    (3, 3, "sms",
     "{business_key} (installment {installment}): {amount} {currency} was due on {due_date} and is unpaid. "
     "Please pay as soon as possible.",
     "您的欠款 {business_key}（第{installment}期）{amount} {currency} 已于 {due_date} 到期未付，请尽快付款。"),
    (4, 7, "call_task",
     "7 days overdue: call the customer about {amount} {currency} ({business_key}, installment {installment}).",
     "逾期7天：请致电客户催收 {amount} {currency}（{business_key} 第{installment}期）。"),
    (5, 15, "email",
     "Dear customer, {amount} {currency} of {business_key} (installment {installment}) has been overdue since "
     "{due_date}. Please pay it or call us to agree on a date.",
     "尊敬的客户：您的欠款 {business_key}（第{installment}期）{amount} {currency} 自 {due_date} 起逾期，"
     "请尽快付款或来电约定付款日期。"),
    (6, 30, "supervisor_review",
     "30 days overdue: review {business_key} (installment {installment}), {amount} {currency} unpaid.",
     "逾期30天：请审核 {business_key}（第{installment}期），未付 {amount} {currency}。"),
    (7, 45, "write_off_approval",
     "45 days overdue: approve or reject writing off {amount} {currency} of {business_key} "
     "(installment {installment}).",
     "逾期45天：请审批是否核销 {business_key}（第{installment}期）未付的 {amount} {currency}。"),
]


def upgrade() -> None:
    op.create_table('dunning_level',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('message_en', sa.Text(), nullable=False),
    sa.Column('message_zh', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('sms', 'email', 'call_task', 'supervisor_review', 'write_off_approval')",
                       name=op.f('ck_dunning_level_action')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dunning_level')),
    sa.UniqueConstraint('days', name=op.f('uq_dunning_level_days')),
    sa.UniqueConstraint('level', name=op.f('uq_dunning_level_level'))
    )
    op.create_table('iou',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.Column('business_key', sa.String(length=64), nullable=True),
    sa.Column('amount', MONEY, nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('responsible_agent', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=True),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('open', 'paid', 'written_off', 'partially_written_off')",
                       name=op.f('ck_iou_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_iou_amount_positive')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_iou_customer_id_customer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_iou')),
    sa.UniqueConstraint('business_key', name=op.f('uq_iou_business_key'))
    )
    with op.batch_alter_table('iou', schema=None) as batch_op:
        batch_op.create_index('ix_iou_customer_id', ['customer_id'], unique=False)
        batch_op.create_index('ix_iou_status', ['status'], unique=False)

    op.create_table('iou_installment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('iou_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('amount', MONEY, nullable=False),
    sa.Column('paid', MONEY, nullable=False),
    sa.Column('written_off', MONEY, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('dunning_level', sa.Integer(), nullable=False),
    sa.Column('dunning_days', sa.Integer(), nullable=True),
    sa.Column('review_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('open', 'paid', 'written_off')", name=op.f('ck_iou_installment_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_iou_installment_amount_positive')),
    sa.CheckConstraint('paid >= 0 AND written_off >= 0 AND paid + written_off <= amount',
                       name=op.f('ck_iou_installment_settled_le_amount')),
    sa.ForeignKeyConstraint(['iou_id'], ['iou.id'], name=op.f('fk_iou_installment_iou_id_iou'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_iou_installment')),
    sa.UniqueConstraint('iou_id', 'number', name=op.f('uq_iou_installment_iou_id_number'))
    )
    op.create_table('iou_payment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('installment_id', sa.Integer(), nullable=False),
    sa.Column('amount', MONEY, nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('reference', sa.String(length=100), nullable=False),
    sa.Column('recorded_by', sa.String(length=100), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("method IN ('cash', 'bank_transfer', 'card', 'wechat_pay', 'alipay', 'other')",
                       name=op.f('ck_iou_payment_method')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_iou_payment_amount_positive')),
    sa.ForeignKeyConstraint(['installment_id'], ['iou_installment.id'],
                            name=op.f('fk_iou_payment_installment_id_iou_installment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_iou_payment'))
    )
    with op.batch_alter_table('iou_payment', schema=None) as batch_op:
        batch_op.create_index('ix_iou_payment_installment_id', ['installment_id'], unique=False)

    levels = sa.table('dunning_level', sa.column('level', sa.Integer()), sa.column('days', sa.Integer()),
                      sa.column('action', sa.String()), sa.column('message_en', sa.Text()),
                      sa.column('message_zh', sa.Text()), sa.column('updated_at', sa.DateTime(timezone=True)))
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # the models keep UTC without an offset on SQLite
    op.bulk_insert(levels, [{"level": n, "days": d, "action": a, "message_en": en, "message_zh": zh,
                             "updated_at": now} for n, d, a, en, zh in DEFAULT_LEVELS])


def downgrade() -> None:
    with op.batch_alter_table('iou_payment', schema=None) as batch_op:
        batch_op.drop_index('ix_iou_payment_installment_id')

    op.drop_table('iou_payment')
    op.drop_table('iou_installment')
    with op.batch_alter_table('iou', schema=None) as batch_op:
        batch_op.drop_index('ix_iou_status')
        batch_op.drop_index('ix_iou_customer_id')

    op.drop_table('iou')
    op.drop_table('dunning_level')
