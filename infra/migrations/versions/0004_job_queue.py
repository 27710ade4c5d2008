"""The durable job queue of worker mode: procrastinate's own schema, in PostgreSQL only.

SQLite studios run jobs inline and need no queue. Upgrading procrastinate means a new migration that
applies the SQL files it ships for that step (procrastinate/sql/migrations).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op
from procrastinate.schema import SchemaManager

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # through the driver's own cursor, without parameters: the schema's "%" and ":" are literal SQL
    with bind.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(SchemaManager.get_schema())


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in (
        "procrastinate_events",
        "procrastinate_periodic_defers",
        "procrastinate_jobs",
        "procrastinate_workers",
    ):
        bind.exec_driver_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
