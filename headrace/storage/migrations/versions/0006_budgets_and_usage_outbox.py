"""budgets (spend per day and month, USD, on `limits`); usage outbox (`started` rows of
requests in flight, the replica that wrote them)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 13:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("limits") as batch_op:
        batch_op.add_column(sa.Column("spend_per_day_usd", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("spend_per_month_usd", sa.Float(), nullable=True))
    with op.batch_alter_table("usage_events") as batch_op:
        batch_op.add_column(sa.Column("replica", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_usage_events_status", ["status"])


def downgrade() -> None:
    op.execute("UPDATE usage_events SET status = 'cancelled' WHERE status = 'started'")
    with op.batch_alter_table("usage_events") as batch_op:
        batch_op.drop_index("ix_usage_events_status")
        batch_op.drop_column("replica")
    with op.batch_alter_table("limits") as batch_op:
        batch_op.drop_column("spend_per_month_usd")
        batch_op.drop_column("spend_per_day_usd")
