"""Accounts and access: users, API keys, browser sessions, the credit ledger, share links; clips
that exist from submission (songs.status), job ownership, attempts and claims.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCAL_USER_ID = "local"


def upgrade() -> None:
    users = op.create_table(
        "users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("email", sa.String(320), unique=True, nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("monthly_credits", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    # The zero-setup studio's one user; it owns every job made before accounts existed.
    op.bulk_insert(
        users,
        [
            {
                "id": LOCAL_USER_ID,
                "email": None,
                "name": "Local studio",
                "password_hash": None,
                "monthly_credits": 1_000_000,
                "created_at": datetime.now(UTC),
            }
        ],
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("user_id", sa.String(32), nullable=False, server_default=LOCAL_USER_ID))
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="generate"))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("claim", sa.String(32), nullable=True))
        batch.add_column(sa.Column("credits", sa.Integer(), nullable=False, server_default="0"))
        batch.create_foreign_key("fk_jobs_user", "users", ["user_id"], ["id"])
        batch.create_index("ix_jobs_user_id", ["user_id"])
    with op.batch_alter_table("songs") as batch:
        batch.add_column(sa.Column("user_id", sa.String(32), nullable=False, server_default=LOCAL_USER_ID))
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="complete"))
        batch.add_column(sa.Column("error_message", sa.Text(), nullable=True))
        batch.add_column(sa.Column("negative_style", sa.Text(), nullable=False, server_default=""))
        batch.create_foreign_key("fk_songs_user", "users", ["user_id"], ["id"])
        batch.create_index("ix_songs_user_id", ["user_id"])
        batch.create_index("ix_songs_status", ["status"])
        batch.create_unique_constraint("uq_songs_job_variation", ["job_id", "variation"])
    op.create_table(
        "credit_ledger",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), nullable=True),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.UniqueConstraint("job_id", "reason", name="uq_credit_ledger_job_reason"),
    )
    op.create_table(
        "share_links",
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column(
            "song_id",
            sa.String(32),
            sa.ForeignKey("songs.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("share_links")
    op.drop_table("credit_ledger")
    with op.batch_alter_table("songs") as batch:
        batch.drop_constraint("uq_songs_job_variation", type_="unique")
        batch.drop_index("ix_songs_status")
        batch.drop_index("ix_songs_user_id")
        batch.drop_constraint("fk_songs_user", type_="foreignkey")
        for column in ("negative_style", "error_message", "status", "user_id"):
            batch.drop_column(column)
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_user_id")
        batch.drop_constraint("fk_jobs_user", type_="foreignkey")
        for column in ("credits", "claim", "attempts", "kind", "user_id"):
            batch.drop_column(column)
    op.drop_table("web_sessions")
    op.drop_table("api_keys")
    op.drop_table("users")
