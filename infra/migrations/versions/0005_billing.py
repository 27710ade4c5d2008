"""Billing: plans and Stripe links on users, the job's tier, period-scoped idempotent ledger entries,
processed Stripe events, and the usage outbox (meter events waiting to reach Stripe).

Users that existed before plans keep what they had: a per-user monthly allowance (plan `custom`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("plan", sa.String(16), nullable=False, server_default="free"))
        batch.add_column(sa.Column("stripe_customer_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("stripe_subscription_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("subscription_status", sa.String(32), nullable=True))
        batch.add_column(sa.Column("billing_synced_at", sa.Integer(), nullable=False, server_default="0"))
        batch.create_unique_constraint("uq_users_stripe_customer_id", ["stripe_customer_id"])
    op.execute("UPDATE users SET plan = 'custom'")  # earlier accounts had per-user monthly credits
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("tier", sa.String(8), nullable=False, server_default="free"))

    with op.batch_alter_table("credit_ledger") as batch:
        batch.add_column(sa.Column("period", sa.String(40), nullable=True))
        batch.add_column(sa.Column("key", sa.String(200), nullable=True))
    # entries so far were monthly; their natural keys were (job, reason), or the row for grants
    month = (
        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM')"
        if op.get_bind().dialect.name == "postgresql"
        else "strftime('%Y-%m', created_at)"
    )
    op.execute(
        f"UPDATE credit_ledger SET period = 'month:' || {month}, "
        "key = reason || ':' || COALESCE(job_id, CAST(id AS VARCHAR(20)))"
    )
    with op.batch_alter_table("credit_ledger") as batch:
        batch.alter_column("period", existing_type=sa.String(40), nullable=False)
        batch.alter_column("key", existing_type=sa.String(200), nullable=False)
        batch.create_unique_constraint("uq_credit_ledger_key", ["key"])
        batch.create_index("ix_credit_ledger_user_period", ["user_id", "period"])

    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "meter_outbox",
        sa.Column("identifier", sa.String(100), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("event_name", sa.String(100), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_meter_outbox_state_next_try_at", "meter_outbox", ["state", "next_try_at"])


def downgrade() -> None:
    op.drop_index("ix_meter_outbox_state_next_try_at", table_name="meter_outbox")
    op.drop_table("meter_outbox")
    op.drop_table("stripe_events")
    with op.batch_alter_table("credit_ledger") as batch:
        batch.drop_index("ix_credit_ledger_user_period")
        batch.drop_constraint("uq_credit_ledger_key", type_="unique")
        batch.drop_column("key")
        batch.drop_column("period")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("tier")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_stripe_customer_id", type_="unique")
        for column in ("billing_synced_at", "subscription_status", "stripe_subscription_id",
                       "stripe_customer_id", "plan"):  # fmt: skip
            batch.drop_column(column)
